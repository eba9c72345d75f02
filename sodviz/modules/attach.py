"""Insert CCTM / FINE into an RT-DETR, save them beside the model, load them back, record their maps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from sodviz.modules.cctm import CCTMStack
from sodviz.modules.fine import FineConfig, FineStack

MODULES_CONFIG = "sodviz_modules.json"
MODULES_WEIGHTS = "sodviz_modules.safetensors"
ATTRIBUTE = "sodviz_modules"  # the container's name on the model; its state-dict prefix


@dataclass(frozen=True)
class ModulesConfig:
    """Which modules a detector carries. `boost` only records how it was trained (a loss, no weights)."""

    cctm: bool = False
    cctm_hidden_ratio: float = 1.0
    fine: FineConfig | None = None
    boost: dict | None = None  # BoostConfig fields when trained with the Boost loss

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, on in (("fine", self.fine), ("cctm", self.cctm), ("boost", self.boost)) if on)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ModulesConfig:
        values = json.loads(text)
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(
                f"{MODULES_CONFIG} has unknown fields {sorted(unknown)} (written by another version?)"
            )
        fine = values.pop("fine", None)
        if fine is not None:
            fine = FineConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in fine.items()})
        return cls(fine=fine, **values)


class DetectorModules(nn.Module):
    """The container registered on the model as `model.sodviz_modules`."""

    def __init__(self, config: ModulesConfig, *, channels: int, num_levels: int) -> None:
        super().__init__()
        self.config = config
        self.cctm = CCTMStack(channels, num_levels, config.cctm_hidden_ratio) if config.cctm else None
        self.fine = FineStack(channels, config.fine) if config.fine is not None else None


def hybrid_encoder(model: nn.Module) -> nn.Module:
    encoder = getattr(getattr(model, "model", None), "encoder", None)
    if encoder is None or not hasattr(encoder, "fpn_blocks"):
        raise ValueError(
            f"CCTM and FINE go into an RT-DETR-style hybrid encoder; {type(model).__name__} has none"
        )
    return encoder


def attach_modules(model: nn.Module, config: ModulesConfig) -> nn.Module:
    """Insert the modules `config` names into `model` (in place) and return it.

    The new parameters are part of `model` (`model.sodviz_modules.*`), so an optimiser, an EMA
    copy, `.to()` and `state_dict()` all see them. Raises ValueError for a model without a hybrid
    encoder, or one that already carries modules.
    """
    if hasattr(model, ATTRIBUTE):
        raise ValueError("this model already carries sodviz modules")
    encoder = hybrid_encoder(model)
    channels, num_levels = model.config.encoder_hidden_dim, len(model.config.encoder_in_channels)
    parameter = next(model.parameters())
    modules = DetectorModules(config, channels=channels, num_levels=num_levels)
    modules.to(device=parameter.device, dtype=parameter.dtype)
    if modules.cctm is not None:
        modules.cctm.attach(encoder)
    if modules.fine is not None:
        modules.fine.attach(encoder.fpn_blocks)
    model.add_module(ATTRIBUTE, modules)
    return model


def modules_of(model: nn.Module) -> DetectorModules | None:
    return getattr(model, ATTRIBUTE, None)


def split_state_dict(model: nn.Module) -> tuple[dict, dict]:
    """(the detector's own weights, the modules' weights without the prefix)."""
    own, extra = {}, {}
    for name, tensor in model.state_dict().items():
        if name.startswith(ATTRIBUTE + "."):
            extra[name[len(ATTRIBUTE) + 1 :]] = tensor
        else:
            own[name] = tensor
    return own, extra


def save_modules(model: nn.Module, folder: str | Path, *, dtype: torch.dtype | None = None) -> None:
    """Write `sodviz_modules.json` and `sodviz_modules.safetensors` into `folder` (no-op without modules)."""
    modules = modules_of(model)
    if modules is None:
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _, extra = split_state_dict(model)
    tensors = {
        k: (v.to(dtype) if dtype and v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in extra.items()
    }
    save_file(tensors, folder / MODULES_WEIGHTS)
    (folder / MODULES_CONFIG).write_text(modules.config.to_json())


def load_modules(model: nn.Module, folder: str | Path) -> ModulesConfig | None:
    """Attach the modules saved in `folder`, if any, with their weights. Returns their config."""
    folder = Path(folder)
    if not (folder / MODULES_CONFIG).is_file():
        return None
    config = ModulesConfig.from_json((folder / MODULES_CONFIG).read_text())
    attach_modules(model, config)
    weights = folder / MODULES_WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{folder} has {MODULES_CONFIG} but not {MODULES_WEIGHTS}")
    parameter = next(model.parameters())
    state = {k: v.to(parameter.dtype) if v.is_floating_point() else v for k, v in load_file(weights).items()}
    missing, unexpected = modules_of(model).load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{weights} does not match its config: missing {missing}, unexpected {unexpected}")
    return config


@contextmanager
def record_maps(model: nn.Module) -> Iterator[dict[str, dict[str, torch.Tensor]]]:
    """Collect every module's maps while the block runs the model: keys `cctm<level>` and
    `fine<fusion>`, each a dict of detached tensors (see `CCTM.maps`, `FineAttention.maps`)."""
    modules = modules_of(model)
    stacks = [s for s in (getattr(modules, "cctm", None), getattr(modules, "fine", None)) if s is not None]
    recording: dict[str, dict[str, torch.Tensor]] = {}
    for stack in stacks:
        stack.recording = recording
    try:
        yield recording
    finally:
        for stack in stacks:
            stack.recording = None
