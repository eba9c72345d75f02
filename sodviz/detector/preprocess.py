"""The model input: each image resized (squashed, aspect-kept or letterboxed) by the detector's own
processor, and the exact `InputTransform` that maps it back."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sodviz.detector.loading import Detector
from sodviz.types import InputTransform


def resolve_input_size(detector: Detector, input_size: int | None) -> int:
    """The input size to use: the detector's default when None."""
    if input_size is None:
        return detector.input_size
    if int(input_size) < 32:
        raise ValueError(f"input_size must be at least 32 pixels, got {input_size}")
    return int(input_size)


def prepare_inputs(
    detector: Detector,
    images: Sequence[np.ndarray],
    *,
    input_size: int | None = None,
    letterbox: bool = False,
) -> tuple[dict[str, torch.Tensor], list[InputTransform]]:
    """Preprocess with the detector's own image processor; record each image's exact transform.

    With `letterbox` (fixed-size families only), each image is first resized to fit the input
    with its aspect kept (bilinear, as the processors resize) and padded with black at the bottom
    and right, so the processor's own resize is the identity."""
    for image in images:
        _check_image(image)
    size = resolve_input_size(detector, input_size)
    target = processor_size(detector.processor, size)
    resized = None
    if letterbox:
        if not is_fixed_size(detector.processor):
            raise ValueError(
                f"{detector.family.name} keeps the image's aspect already: letterbox is for fixed-size ones"
            )
        boxed = [letterboxed(image, (target["height"], target["width"])) for image in images]
        images, resized = [b[0] for b in boxed], [b[1] for b in boxed]
    inputs = detector.processor(
        images=list(images),
        size=target,
        return_tensors="pt",
        input_data_format="channels_last",
    )
    inputs = dict(inputs)
    pad_to_multiple(inputs, detector.input_multiple)
    input_hw = tuple(int(v) for v in inputs["pixel_values"].shape[-2:])
    transforms = []
    for i, image in enumerate(images):
        if resized is not None:
            original_hw = resized[i][1]
            transforms.append(
                InputTransform(
                    image_hw=original_hw, resized_hw=resized[i][0], input_hw=input_hw, letterboxed=True
                )
            )
            continue
        if "pixel_mask" in inputs:
            mask = inputs["pixel_mask"][i].bool()
            resized_hw = (int(mask.any(dim=1).sum()), int(mask.any(dim=0).sum()))
        else:
            resized_hw = input_hw
        transforms.append(InputTransform(image_hw=image.shape[:2], resized_hw=resized_hw, input_hw=input_hw))
    device = next(detector.model.parameters()).device
    if detector.prompt is not None:
        inputs.update(detector.prompt.model_inputs(len(transforms)))
    return {name: value.to(device) for name, value in inputs.items()}, transforms


def pad_to_multiple(inputs: dict[str, torch.Tensor], multiple: int) -> None:
    """Pad `pixel_values` (and its `pixel_mask`, made if missing) at the bottom and right so both
    sides are multiples of `multiple` (windowed ViT backbones), in place. The mask marks the
    padding, as a DETR processor's own batch padding does."""
    pixels = inputs["pixel_values"]
    height, width = pixels.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if not (pad_h or pad_w):
        return
    mask = inputs.get("pixel_mask")
    if mask is None:
        mask = torch.ones((pixels.shape[0], height, width), dtype=torch.long)
    inputs["pixel_values"] = torch.nn.functional.pad(pixels, (0, pad_w, 0, pad_h))
    inputs["pixel_mask"] = torch.nn.functional.pad(mask, (0, pad_w, 0, pad_h))


def input_transform(
    detector: Detector, image: np.ndarray, *, input_size: int | None = None, letterbox: bool = False
) -> InputTransform:
    """How `image` would be fed to the detector (the processor runs; the model does not)."""
    return prepare_inputs(detector, [image], input_size=input_size, letterbox=letterbox)[1][0]


def input_summary(transform: InputTransform) -> str:
    """One sentence on the model input and its scale factors: what a squash does to objects."""
    scale_x, scale_y = transform.scale_xy
    input_h, input_w = transform.input_hw
    text = f"Model input **{input_w}x{input_h}** px; the image is scaled x {scale_x:.3f}, y {scale_y:.3f}"
    if abs(scale_x / scale_y - 1) > 0.02:
        text += (
            f": **squashed**, objects {_resized(scale_x)} across and {_resized(scale_y)} down "
            f"(aspect {scale_y / scale_x:.2f}:1 distorted)"
        )
    elif transform.resized_hw != transform.input_hw:
        resized_h, resized_w = transform.resized_hw
        text += f", aspect kept ({resized_w}x{resized_h} px of image, the rest padding)"
    return text + f"; size buckets use {transform.length_scale:.3f} input px per image px."


def _resized(scale: float) -> str:
    return f"shrink {1 / scale:.2f}x" if scale < 1 else f"grow {scale:.2f}x"


def is_fixed_size(processor: object) -> bool:
    """Whether a processor resizes every image to one height and width (RT-DETR, D-FINE, ...)."""
    size = processor.size
    return bool(getattr(size, "height", None) and getattr(size, "width", None))


def letterboxed(image: np.ndarray, input_hw: tuple[int, int]) -> tuple[np.ndarray, tuple[tuple, tuple]]:
    """`image` resized to fit `input_hw` with its aspect kept, at the top-left of a black input;
    and ((resized h, w), (original h, w))."""
    from PIL import Image

    height, width = image.shape[:2]
    factor = min(input_hw[0] / height, input_hw[1] / width)
    resized_hw = (
        max(1, min(input_hw[0], round(height * factor))),
        max(1, min(input_hw[1], round(width * factor))),
    )
    small = np.asarray(Image.fromarray(image).resize(resized_hw[::-1], Image.BILINEAR))
    canvas = np.zeros((*input_hw, 3), np.uint8)
    canvas[: resized_hw[0], : resized_hw[1]] = small
    return canvas, (resized_hw, (height, width))


def processor_size(processor: object, input_size: int) -> dict[str, int]:
    """The processor's `size` argument for an input size, in the processor's own style.

    Fixed-size processors (RT-DETR family) get `input_size` as height, width scaled alike;
    aspect-keeping ones (DETR family) get it as the shortest edge, the longest edge scaled alike.
    """
    size = processor.size
    if is_fixed_size(processor):
        return {"height": input_size, "width": round(input_size * size.width / size.height)}
    if getattr(size, "shortest_edge", None):
        longest = size.longest_edge or round(size.shortest_edge * 1333 / 800)
        return {"shortest_edge": input_size, "longest_edge": round(input_size * longest / size.shortest_edge)}
    raise ValueError(f"cannot set an input size on processor size {size}")


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(
            f"expected an RGB uint8 image of shape (H, W, 3), got shape {shape} and dtype {dtype}"
        )
    if min(image.shape[:2]) < 1:
        raise ValueError(f"image is empty: shape {image.shape}")
