"""The training recipe: its config (every default the demo detector's), the model it starts from,
the learning-rate schedule and the parameter groups."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, RTDetrConfig, RTDetrForObjectDetection, RTDetrResNetConfig

from sodviz.detector.loading import EMBEDDED_MODELS
from sodviz.modules import FineConfig, ModulesConfig, attach_modules
from sodviz.modules.attach import ATTRIBUTE
from sodviz.modules.losses import BoostConfig, boost_loss_function
from sodviz.notices import notify


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
        model = initial_weights(config.init, class_names)
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


CLASS_HEADS = ("class_embed", "enc_score_head", "denoising_class_embed")  # RT-DETR's per-class weights


def initial_weights(init: str, class_names: list[str]) -> RTDetrForObjectDetection:
    """`init`'s weights (a folder, a hub id, or a name of `EMBEDDED_MODELS` such as "demo") for
    data with `class_names`. With other classes than `init`'s (other names, or another order),
    every weight but the class heads (`CLASS_HEADS`) is `init`'s and the class heads start from
    a fresh random initialisation, whatever their shape (a `DataNotice` says so)."""
    local = Path(init).expanduser()
    if local.exists() and not local.is_dir():
        raise FileNotFoundError(
            f"--init {init!r} is a file; give the model's folder (save_pretrained layout)"
        )
    source = str(EMBEDDED_MODELS.get(init, local if local.exists() else init))
    try:
        old = AutoConfig.from_pretrained(source)
    except OSError as error:
        raise FileNotFoundError(
            f"--init {init!r}: no model there (not a folder with a config.json, nor a cached hub id)"
        ) from error
    old_names = [old.id2label[i] for i in range(old.num_labels)]
    pretrained = RTDetrForObjectDetection.from_pretrained(source, dtype=torch.float32)
    if old_names == class_names:
        return pretrained
    notify([
        f"--init {init}: its classes {old_names} are not the data's {class_names}; "
        f"the class heads start afresh, every other weight is {init}'s."
    ])  # fmt: skip
    config = copy.deepcopy(pretrained.config)
    config.id2label = dict(enumerate(class_names))
    config.label2id = {name: i for i, name in enumerate(class_names)}
    config.num_labels = len(class_names)
    model = RTDetrForObjectDetection(config)  # random weights everywhere, the class heads included
    kept = {k: v for k, v in pretrained.state_dict().items() if not any(h in k for h in CLASS_HEADS)}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    if unexpected or any(not any(h in k for h in CLASS_HEADS) for k in missing):
        raise ValueError(f"--init {init}: weights do not fit the model ({unexpected[:3] or missing[:3]})")
    return model


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """The detector's parameters at `lr`, inserted modules' at `lr * module_lr_scale`."""
    own = [p for n, p in model.named_parameters() if not n.startswith(ATTRIBUTE + ".")]
    extra = [p for n, p in model.named_parameters() if n.startswith(ATTRIBUTE + ".")]
    groups = [{"params": own}]
    if extra:
        groups.append({"params": extra, "lr": config.lr * config.module_lr_scale})
    return groups


def lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to `min_lr_ratio`."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (
        1 + math.cos(math.pi * min(progress, 1.0))
    )
