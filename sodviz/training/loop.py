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

from sodviz.detector.inference import boxes_to_image
from sodviz.evaluation.coco import coco_metrics, coco_results, first_images, load_coco
from sodviz.modules import FineConfig, ModulesConfig, attach_modules, save_modules, split_state_dict
from sodviz.modules.attach import ATTRIBUTE
from sodviz.modules.losses import BoostConfig, boost_loss_function
from sodviz.training.data import CropBatches
from sodviz.types import InputTransform


@dataclass
class TrainConfig:
    """Training recipe; every default is the committed demo detector's."""

    data: str = "data/synth/train"  # COCO folder: images/ + annotations.json
    val_data: str | None = "data/synth/val"
    out: str = "runs/demo"
    input_size: int = 512  # square model input, pixels
    batch_size: int = 16
    steps: int = 4900
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
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:1", ...
    workers: int = 12  # DataLoader processes making crops (0: in the training process); shapes the stream
    model: dict = field(default_factory=dict)  # overrides of `demo_model_config`
    init: str | None = None  # fine-tune: start from this model folder's weights, not random ones
    modules: tuple[str, ...] = ()  # any of "fine", "cctm", "boost" (sodviz.modules, sodviz.modules.losses)
    module_lr_scale: float = 10.0  # the inserted modules learn at lr * this


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


def initial_model(config: TrainConfig, class_names: list[str]) -> RTDetrForObjectDetection:
    """A random demo-sized RT-DETR, or `config.init`'s weights; with `config.modules` inserted and
    the Boost loss set when named."""
    unknown = set(config.modules) - {"fine", "cctm", "boost"}
    if unknown:
        raise ValueError(f"unknown modules {sorted(unknown)}; expected fine, cctm, boost")
    if config.init is None:
        model = RTDetrForObjectDetection(demo_model_config(class_names, **config.model))
    else:
        model = RTDetrForObjectDetection.from_pretrained(config.init, dtype=torch.float32)
        if list(model.config.id2label.values()) != class_names:
            raise ValueError(
                f"{config.init} has classes {list(model.config.id2label.values())}, data has {class_names}"
            )
    boost = BoostConfig() if "boost" in config.modules else None
    modules = ModulesConfig(
        cctm="cctm" in config.modules,
        fine=FineConfig() if "fine" in config.modules else None,
        boost=boost.to_dict() if boost else None,
    )
    if modules.names:
        attach_modules(model, modules)
    if boost is not None:
        model.loss_function = boost_loss_function(boost)
    return model


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """The detector's parameters at `lr`, inserted modules' at `lr * module_lr_scale`."""
    own = [p for n, p in model.named_parameters() if not n.startswith(ATTRIBUTE + ".")]
    extra = [p for n, p in model.named_parameters() if n.startswith(ATTRIBUTE + ".")]
    groups = [{"params": own}]
    if extra:
        groups.append({"params": extra, "lr": config.lr * config.module_lr_scale})
    return groups


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
    categories = sorted(
        load_coco(Path(config.data) / "annotations.json")["categories"], key=lambda c: c["id"]
    )
    model = initial_model(config, [c["name"] for c in categories])
    if prepare_model is not None:
        model = prepare_model(model)
    if loss_function is not None:
        model.loss_function = loss_function
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(
        parameter_groups(model, config), lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config))
    ema = ModelEma(model, config.ema_decay, config.ema_warmup)
    step, log = 0, []
    checkpoint = out / "checkpoint.pt"
    if resume and checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False, map_location=device)
        model.load_state_dict(state["model"])
        ema.module.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, ema.updates, log = state["step"], state["ema_updates"], state["log"]
    batches = torch.utils.data.DataLoader(
        CropBatches(
            config.data,
            batch_size=config.batch_size,
            input_size=config.input_size,
            zoom_range=config.zoom_range,
            seed=config.seed,
            start_step=step,
        ),
        batch_size=None,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
        pin_memory=device.type == "cuda",
    )
    model.train()
    started = time.perf_counter()
    for images, targets in batches:
        if step >= config.steps:
            break
        pixel_values = to_pixel_values(images, config.channels_last, device=device)
        labels = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
        outputs = model(pixel_values=pixel_values, labels=labels)
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
            "seconds": time.perf_counter() - started,  # the whole step, waiting for data included
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
        if "val" in record:  # a usable model exists while training runs
            export(ema.module, out / "model", config=config, log=log)
        if on_progress is not None:
            on_progress(step, record)
        if step % config.checkpoint_every == 0 or step == config.steps:
            _save_checkpoint(checkpoint, model, ema, optimizer, scheduler, step, log)
        started = time.perf_counter()
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
    device = next(model.parameters()).device
    detections, scale = [], {}
    for record in subset["images"]:
        with Image.open(folder / "images" / record["file_name"]) as picture:
            resized = np.asarray(picture.convert("RGB").resize((input_size, input_size), Image.BILINEAR))
        outputs = model(pixel_values=to_pixel_values(resized[None], channels_last=False, device=device))
        best, labels = outputs.logits[0].sigmoid().max(dim=1)
        best, labels = best.cpu(), labels.cpu()
        transform = InputTransform(
            image_hw=(record["height"], record["width"]),
            resized_hw=(input_size,) * 2,
            input_hw=(input_size,) * 2,
        )
        boxes = boxes_to_image(outputs.pred_boxes[0].cpu().numpy(), transform)
        detections += coco_results(boxes, best.numpy(), labels.numpy(), image_id=record["id"])
        scale[record["id"]] = input_size / max(record["width"], record["height"])
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
