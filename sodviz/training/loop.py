"""Train a small RT-DETR from scratch on a COCO-format dataset (the demo detector's recipe)."""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from transformers import RTDetrImageProcessorPil

from sodviz.detector.inference import decode_predictions, uses_sigmoid
from sodviz.evaluation.coco import coco_metrics, coco_results, first_images, load_coco, model_categories
from sodviz.modules import save_modules, split_state_dict
from sodviz.training.data import CropBatches, class_names
from sodviz.training.recipe import TrainConfig, initial_model, lr_factor, parameter_groups
from sodviz.types import InputTransform, best_class


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


def resolve_device(name: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu; anything else as torch names it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def to_pixel_values(
    images: np.ndarray, channels_last: bool, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """uint8 `(B, S, S, 3)` images -> float `[B, 3, S, S]` in [0, 1] (RT-DETR does not normalise)."""
    batch = torch.from_numpy(np.require(images, requirements="W")).to(device, non_blocking=True)
    batch = batch.permute(0, 3, 1, 2).float().div_(255)
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
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    run = _TrainingRun.start(config, device, prepare_model=prepare_model, loss_function=loss_function)
    checkpoint = out / "checkpoint.pt"
    if resume and checkpoint.is_file():
        run.load(checkpoint, device)
    run.model.train()
    started = time.perf_counter()
    for images, targets in _batches(config, run.step, device):
        if run.step >= config.steps:
            break
        record = run.train_step(images, targets, device) | {"seconds": time.perf_counter() - started}
        if config.val_data and (run.step % config.eval_every == 0 or run.step == config.steps):
            record["val"] = evaluate_model(
                run.ema.module, config.val_data, input_size=config.input_size, max_images=config.eval_images
            )
        run.log.append(record)
        if "val" in record:  # a usable model exists while training runs
            export(run.ema.module, out / "model", config=config, log=run.log)
        if on_progress is not None:
            on_progress(run.step, record)
        if run.step % config.checkpoint_every == 0 or run.step == config.steps:
            run.save(checkpoint)
        started = time.perf_counter()
    return export(run.ema.module, out / "model", config=config, log=run.log)


class _TrainingRun:
    """The model, its EMA, optimiser and schedule, the step and the log: what a checkpoint holds."""

    def __init__(self, config: TrainConfig, model: nn.Module) -> None:
        self.config, self.model = config, model
        self.optimizer = torch.optim.AdamW(
            parameter_groups(model, config), lr=config.lr, weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, config)
        )
        self.ema = ModelEma(model, config.ema_decay, config.ema_warmup)
        self.step, self.log = 0, []

    @classmethod
    def start(
        cls, config: TrainConfig, device: torch.device, *, prepare_model, loss_function
    ) -> _TrainingRun:
        model = initial_model(config, class_names(load_coco(Path(config.data) / "annotations.json")))
        if prepare_model is not None:
            model = prepare_model(model)
        if loss_function is not None:
            model.loss_function = loss_function
        model = model.to(device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return cls(config, model)

    def train_step(self, images: np.ndarray, targets: list[dict], device: torch.device) -> dict:
        """One optimiser step on a batch; returns its log record (losses, gradient norm, lr)."""
        pixel_values = to_pixel_values(images, self.config.channels_last, device=device)
        labels = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
        outputs = self.model(pixel_values=pixel_values, labels=labels)
        self.optimizer.zero_grad(set_to_none=True)
        outputs.loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip))
        self.optimizer.step()
        self.scheduler.step()
        self.ema.update(self.model)
        self.step += 1
        record = {
            "step": self.step,
            "loss": outputs.loss.item(),
            "grad_norm": grad_norm,
            "lr": self.scheduler.get_last_lr()[0],
        }
        return record | {
            k: v.item()
            for k, v in (outputs.loss_dict or {}).items()
            if k in ("loss_vfl", "loss_bbox", "loss_giou")
        }

    def load(self, path: Path, device: torch.device) -> None:
        state = torch.load(path, weights_only=False, map_location=device)
        self.model.load_state_dict(state["model"])
        self.ema.module.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.ema.updates, self.log = state["step"], state["ema_updates"], state["log"]

    def save(self, path: Path) -> None:
        """Everything `load` reads, written atomically (a temporary file, then a rename)."""
        state = {
            "model": self.model.state_dict(),
            "ema": self.ema.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "ema_updates": self.ema.updates,
            "log": self.log,
        }
        torch.save(state, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)


def _batches(config: TrainConfig, start_step: int, device: torch.device) -> torch.utils.data.DataLoader:
    """The seeded crop stream from `start_step` on (the same crops whether resumed or not)."""
    return torch.utils.data.DataLoader(
        CropBatches(
            config.data,
            batch_size=config.batch_size,
            input_size=config.input_size,
            zoom_range=config.zoom_range,
            seed=config.seed,
            start_step=start_step,
        ),
        batch_size=None,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
        pin_memory=device.type == "cuda",
    )


@torch.no_grad()
def evaluate_model(
    model: nn.Module, folder: str | Path, *, input_size: int, max_images: int | None = None
) -> dict:
    """COCO metrics of whole images resized to `input_size`, size buckets in model-input pixels."""
    folder = Path(folder)
    subset = first_images(load_coco(folder / "annotations.json"), max_images)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    subset, category_of = model_categories(subset, names)
    detections, scale = [], {}
    for record in subset["images"]:
        with Image.open(folder / "images" / record["file_name"]) as picture:
            record = {"width": picture.width, "height": picture.height} | record
            resized = np.asarray(picture.convert("RGB").resize((input_size, input_size), Image.BILINEAR))
        outputs = model(pixel_values=to_pixel_values(resized[None], channels_last=False, device=device))
        transform = InputTransform(
            image_hw=(record["height"], record["width"]),
            resized_hw=(input_size,) * 2,
            input_hw=(input_size,) * 2,
        )
        sigmoid = uses_sigmoid(model.config, default=True)
        ((boxes, probabilities),) = decode_predictions(
            outputs.logits, outputs.pred_boxes, [transform], sigmoid=sigmoid
        )
        best, labels = best_class(probabilities)
        detections += coco_results(boxes, best, category_of[labels], image_id=record["id"])
        scale[record["id"]] = input_size / max(record["width"], record["height"])  # as before the move
    model.train(was_training)
    return coco_metrics(subset, detections, area_scale=scale)


def export(
    model: nn.Module, folder: Path, *, config: TrainConfig, log: list, dtype: torch.dtype | None = None
) -> Path:
    """save_pretrained layout (safetensors) with the processor at the training input size, the log,
    and any inserted modules beside (`sodviz_modules.*`). `dtype=torch.float16` halves the files."""
    model = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format)
    if dtype is not None:
        model = model.to(dtype)
    own, _ = split_state_dict(model)
    model.save_pretrained(folder, state_dict=own)
    save_modules(model, folder)
    RTDetrImageProcessorPil(size={"height": config.input_size, "width": config.input_size}).save_pretrained(
        folder
    )
    (folder / "training_log.json").write_text(json.dumps({"config": asdict(config), "log": log}, default=str))
    return folder
