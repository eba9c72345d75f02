"""Train a small RT-DETR from scratch on a COCO-format dataset (the demo detector's recipe)."""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrImageProcessorPil, RTDetrResNetConfig

from sodviz.evaluation import coco_metrics, coco_results, first_images, load_coco
from sodviz.inference import boxes_to_image
from sodviz.types import InputTransform


@dataclass
class TrainConfig:
    """Training recipe; every default is the committed demo detector's."""

    data: str = "data/synth/train"  # COCO folder: images/ + annotations.json
    val_data: str | None = "data/synth/val"
    out: str = "runs/demo"
    input_size: int = 512  # square model input, pixels
    batch_size: int = 4
    steps: int = 2400
    lr: float = 4e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 150
    min_lr_ratio: float = 0.05  # cosine decays to lr * this
    grad_clip: float = 0.1
    ema_decay: float = 0.999
    ema_warmup: int = 300  # effective decay ramps up as 1 - exp(-step / ema_warmup)
    zoom_range: tuple[float, float] = (0.35, 1.4)  # scale of scene pixels in a training crop
    eval_every: int = 400
    eval_images: int = 16
    checkpoint_every: int = 200
    seed: int = 0
    channels_last: bool = True
    model: dict = field(default_factory=dict)  # overrides of `demo_model_config`


def demo_model_config(class_names: list[str], **overrides) -> RTDetrConfig:
    """A ~4 M-parameter RT-DETR: basic-block ResNet, 128-d hybrid encoder, 3 decoder layers."""
    backbone = RTDetrResNetConfig(
        embedding_size=32,
        hidden_sizes=[32, 64, 128, 256],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        out_features=["stage2", "stage3", "stage4"],
    )
    settings = dict(
        backbone_config=backbone,
        freeze_backbone_batch_norms=False,
        encoder_in_channels=[64, 128, 256],
        encoder_hidden_dim=128,
        encoder_ffn_dim=512,
        encoder_attention_heads=8,
        hidden_expansion=0.5,
        d_model=128,
        decoder_in_channels=[128, 128, 128],
        decoder_ffn_dim=512,
        decoder_layers=3,
        decoder_attention_heads=8,
        decoder_n_points=4,
        num_queries=300,
        num_denoising=100,
        num_labels=len(class_names),
        id2label=dict(enumerate(class_names)),
        label2id={name: i for i, name in enumerate(class_names)},
    )
    return RTDetrConfig(**(settings | overrides))


class CocoCrops:
    """Random zoomed crops of a COCO dataset's images with their boxes (kept decoded in memory)."""

    def __init__(
        self, folder: str | Path, *, input_size: int, zoom_range: tuple[float, float], seed: int
    ) -> None:
        self.folder = Path(folder)
        self.coco = load_coco(self.folder / "annotations.json")
        self.boxes: dict[int, list] = {image["id"]: [] for image in self.coco["images"]}
        for annotation in self.coco["annotations"]:
            x, y, w, h = annotation["bbox"]
            self.boxes[annotation["image_id"]].append([x, y, x + w, y + h, annotation["category_id"]])
        self.input_size = input_size
        self.zoom_range = zoom_range
        self.rng = np.random.default_rng(seed)
        self._images: dict[int, np.ndarray] = {}

    def image(self, index: int) -> np.ndarray:
        record = self.coco["images"][index]
        if record["id"] not in self._images:
            with Image.open(self.folder / "images" / record["file_name"]) as picture:
                self._images[record["id"]] = np.asarray(picture.convert("RGB"))
        return self._images[record["id"]]

    def sample(self) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
        """One crop `(S, S, 3)` uint8 and its target (class_labels, normalised cxcywh boxes)."""
        index = int(self.rng.integers(len(self.coco["images"])))
        image = self.image(index)
        height, width = image.shape[:2]
        zoom = math.exp(self.rng.uniform(*np.log(self.zoom_range)))
        crop = min(round(self.input_size / zoom), height, width)
        x0, y0 = int(self.rng.integers(0, width - crop + 1)), int(self.rng.integers(0, height - crop + 1))
        picture = Image.fromarray(image[y0 : y0 + crop, x0 : x0 + crop]).resize(
            (self.input_size, self.input_size), Image.BILINEAR
        )
        pixels = np.asarray(picture)
        boxes = np.array(self.boxes[self.coco["images"][index]["id"]], np.float32).reshape(-1, 5)
        boxes = _crop_boxes(boxes, x0, y0, crop) * np.array([*[self.input_size / crop] * 4, 1], np.float32)
        pixels, boxes = _random_flip_rotate(pixels, boxes, self.rng)
        return pixels, _target(boxes, self.input_size)


def _crop_boxes(boxes: np.ndarray, x0: int, y0: int, crop: int, min_visible: float = 0.4) -> np.ndarray:
    """Boxes `(N, 5)` [x0, y0, x1, y1, label] moved into a crop, clipped; mostly hidden ones dropped."""
    moved = boxes.copy()
    moved[:, [0, 2]] -= x0
    moved[:, [1, 3]] -= y0
    clipped = moved.copy()
    clipped[:, :4] = np.clip(moved[:, :4], 0, crop)
    area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (
        (visible >= min_visible * np.maximum(area, 1e-6))
        & (clipped[:, 2] > clipped[:, 0])
        & (clipped[:, 3] > clipped[:, 1])
    )
    return clipped[keep]


def _random_flip_rotate(pixels: np.ndarray, boxes: np.ndarray, rng: np.random.Generator):
    """Aerial views have no up: random horizontal flip and 90-degree turns, boxes alike."""
    size = pixels.shape[0]
    if rng.random() < 0.5:
        pixels = pixels[:, ::-1]
        boxes = boxes.copy()
        boxes[:, [0, 2]] = size - boxes[:, [2, 0]]
    for _ in range(int(rng.integers(4))):  # rotate 90 degrees counter-clockwise
        pixels = np.rot90(pixels)
        boxes = np.stack(
            [boxes[:, 1], size - boxes[:, 2], boxes[:, 3], size - boxes[:, 0], boxes[:, 4]], axis=1
        )
    return np.ascontiguousarray(pixels), boxes


def _target(boxes: np.ndarray, size: int) -> dict[str, torch.Tensor]:
    xyxy = boxes[:, :4] / size
    cxcywh = np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    return {"class_labels": torch.as_tensor(boxes[:, 4], dtype=torch.int64), "boxes": torch.as_tensor(cxcywh)}


class ModelEma:
    """Exponential moving average of a model's weights (buffers copied), with a decay warm-up."""

    def __init__(self, model: nn.Module, decay: float, warmup: int) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.warmup, self.updates = decay, warmup, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = self.decay * (1 - math.exp(-self.updates / self.warmup))
        for ema_value, value in zip(
            self.module.state_dict().values(), model.state_dict().values(), strict=True
        ):
            if ema_value.dtype.is_floating_point:
                ema_value.mul_(decay).add_(value.detach(), alpha=1 - decay)
            else:
                ema_value.copy_(value)


def lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to `min_lr_ratio`."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (
        1 + math.cos(math.pi * min(progress, 1.0))
    )


def to_pixel_values(images: list[np.ndarray], channels_last: bool) -> torch.Tensor:
    """uint8 `(S, S, 3)` images -> float `[B, 3, S, S]` in [0, 1] (RT-DETR does not normalise)."""
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)
    return batch.contiguous(memory_format=torch.channels_last) if channels_last else batch


def train(
    config: TrainConfig,
    *,
    prepare_model: Callable[[nn.Module], nn.Module] | None = None,
    loss_function: Callable | None = None,
    resume: bool = True,
    on_progress: Callable[[int, dict], None] | None = None,
) -> Path:
    """Train, evaluate on `val` periodically, checkpoint, and export the EMA model.

    Args:
        config: the recipe.
        prepare_model: called on the fresh model before the optimiser is built, to insert extra
            modules (CCTM, FINE); its new parameters are trained too.
        loss_function: replaces the model's loss (`model.loss_function`), e.g. a Boost loss.
        resume: continue from `out/checkpoint.pt` when it exists.
        on_progress: called after every step with (step, log record).

    Returns:
        The exported model folder (`out/model`, save_pretrained layout with the processor).
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    data = CocoCrops(
        config.data, input_size=config.input_size, zoom_range=config.zoom_range, seed=config.seed
    )
    class_names = [c["name"] for c in sorted(data.coco["categories"], key=lambda c: c["id"])]
    model = RTDetrForObjectDetection(demo_model_config(class_names, **config.model))
    if prepare_model is not None:
        model = prepare_model(model)
    if loss_function is not None:
        model.loss_function = loss_function
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config))
    ema = ModelEma(model, config.ema_decay, config.ema_warmup)
    step, log = 0, []
    checkpoint = out / "checkpoint.pt"
    if resume and checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        ema.module.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, ema.updates, log = state["step"], state["ema_updates"], state["log"]
        data.rng = np.random.default_rng([config.seed, step])
    model.train()
    while step < config.steps:
        started = time.perf_counter()
        samples = [data.sample() for _ in range(config.batch_size)]
        pixel_values = to_pixel_values([s[0] for s in samples], config.channels_last)
        outputs = model(pixel_values=pixel_values, labels=[s[1] for s in samples])
        optimizer.zero_grad(set_to_none=True)
        outputs.loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip))
        optimizer.step()
        scheduler.step()
        ema.update(model)
        step += 1
        record = {
            "step": step,
            "loss": outputs.loss.item(),
            "grad_norm": grad_norm,
            "lr": scheduler.get_last_lr()[0],
            "seconds": time.perf_counter() - started,
        }
        record |= {
            k: v.item()
            for k, v in (outputs.loss_dict or {}).items()
            if k in ("loss_vfl", "loss_bbox", "loss_giou")
        }
        if config.val_data and (step % config.eval_every == 0 or step == config.steps):
            record["val"] = evaluate_model(
                ema.module, config.val_data, input_size=config.input_size, max_images=config.eval_images
            )
        log.append(record)
        if on_progress is not None:
            on_progress(step, record)
        if step % config.checkpoint_every == 0 or step == config.steps:
            _save_checkpoint(checkpoint, model, ema, optimizer, scheduler, step, log)
    return export(ema.module, out / "model", config=config, log=log)


def _save_checkpoint(path: Path, model, ema, optimizer, scheduler, step: int, log: list) -> None:
    state = {
        "model": model.state_dict(),
        "ema": ema.module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "ema_updates": ema.updates,
        "log": log,
    }
    torch.save(state, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


@torch.no_grad()
def evaluate_model(
    model: nn.Module, folder: str | Path, *, input_size: int, max_images: int | None = None
) -> dict:
    """COCO metrics of whole images resized to `input_size`, size buckets in model-input pixels."""
    folder = Path(folder)
    subset = first_images(load_coco(folder / "annotations.json"), max_images)
    was_training = model.training
    model.eval()
    detections, scale = [], {}
    for record in subset["images"]:
        with Image.open(folder / "images" / record["file_name"]) as picture:
            resized = np.asarray(picture.convert("RGB").resize((input_size, input_size), Image.BILINEAR))
        outputs = model(pixel_values=to_pixel_values([resized], channels_last=False))
        best, labels = outputs.logits[0].sigmoid().max(dim=1)
        transform = InputTransform(
            image_hw=(record["height"], record["width"]),
            resized_hw=(input_size,) * 2,
            input_hw=(input_size,) * 2,
        )
        boxes = boxes_to_image(outputs.pred_boxes[0].numpy(), transform)
        detections += coco_results(boxes, best.numpy(), labels.numpy(), image_id=record["id"])
        scale[record["id"]] = input_size / max(record["width"], record["height"])
    model.train(was_training)
    return coco_metrics(subset, detections, area_scale=scale)


def export(model: nn.Module, folder: Path, *, config: TrainConfig, log: list) -> Path:
    """save_pretrained layout (safetensors) with the processor at the training input size, and the log."""
    model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    model.save_pretrained(folder)
    RTDetrImageProcessorPil(size={"height": config.input_size, "width": config.input_size}).save_pretrained(
        folder
    )
    (folder / "training_log.json").write_text(json.dumps({"config": asdict(config), "log": log}, default=str))
    return folder
