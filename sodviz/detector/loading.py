"""Load a DETR-family detector from a hub id, a local folder or the embedded demo model."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForObjectDetection,
    AutoModelForZeroShotObjectDetection,
    AutoTokenizer,
    PreTrainedModel,
)
from transformers.utils import is_timm_available

from sodviz.detector.families import Family, family_for, input_multiple
from sodviz.detector.prompt import TextPrompt, default_prompt, with_prompt
from sodviz.modules import load_modules

MODELS_DIR = Path(__file__).resolve().parents[2] / "assets" / "models"
DEMO_MODEL_DIR = MODELS_DIR / "sodviz-demo"
# Embedded detectors by name: the demo, and the demo fine-tuned with modules (issue 7's ablation).
EMBEDDED_MODELS = {
    "demo": DEMO_MODEL_DIR,
    "demo-fusion": MODELS_DIR / "sodviz-fusion",  # + FINE + CCTM + Boost loss
    "demo-boost": MODELS_DIR / "sodviz-boost",  # + Boost loss only
}
# What the embedded detectors know, said where the model is chosen and on every upload with one.
EMBEDDED_SCOPE = (
    "The embedded demo detectors were trained only on sodviz's generated top-down scenes (vehicle, "
    "person, boat, truck): on real photographs they find few objects and raise many false positives. "
    "For real images load a hub preset or your own fine-tuned folder, or fine-tune the demo on your "
    "COCO data with `python -m sodviz train --init demo` (docs/fine_tune.md)."
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Detector:
    """A loaded detector, frozen: eval mode and no gradients.

    Attributes:
        model: the transformers model, loaded with `attn_implementation="eager"` in float32, with
            any CCTM / FINE modules saved beside it attached (`sodviz.modules`).
        processor: its image processor (from the checkpoint, or the family default).
        family: what kind of DETR it is.
        class_names: class names, index = class id.
        input_size: default input size in pixels: the square side for fixed-size families, the
            shortest edge for aspect-keeping ones.
        content_hash: sha256 over config, processor config and weights; a cache key.
        source: what it was loaded from.
        lock: held while hooks are attached and the model runs (hooks are per-module, shared).
        tokenizer: open-vocabulary models only: the text tokenizer.
        prompt: open-vocabulary models only: the prompt whose phrases are `class_names`
            (`sodviz.detector.prompt.with_prompt` asks for others).
        input_multiple: the input's height and width must be multiples of this (windowed ViT
            backbones); inputs are padded up to it.
        weights_hash: with a prompt, the hash of the model alone (`content_hash` covers the prompt).
    """

    model: PreTrainedModel
    processor: object
    family: Family
    class_names: tuple[str, ...]
    input_size: int
    content_hash: str
    source: str
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    tokenizer: object | None = field(default=None, repr=False, compare=False)
    prompt: TextPrompt | None = None
    input_multiple: int = 1
    weights_hash: str = ""


def load_detector(
    source: str | os.PathLike, *, device: str = "cpu", allow_pickle: bool = False, prompt: str | None = None
) -> Detector:
    """Load a detector.

    Args:
        source: `"demo"` (the embedded demo detector) or another name of `EMBEDDED_MODELS`,
            a local folder in `save_pretrained`
            layout, or a Hugging Face hub id (e.g. `"PekingU/rtdetr_r18vd"`).
        device: torch device to put the model on.
        allow_pickle: also accept `pytorch_model.bin` checkpoints (pickle; can run code on load).
        prompt: open-vocabulary models: the classes as a text prompt, "car. person. boat."
            (None: the checkpoint's labels when they are names, else `prompt.DEFAULT_PROMPT`).

    Raises:
        FileNotFoundError: no such folder, the demo model is missing, or a hub id is neither
            cached nor reachable.
        ValueError: not a supported DETR family, a pickle-only checkpoint without
            `allow_pickle`, or unreadable weights.
        ImportError: the checkpoint needs timm and timm is not installed.
    """
    location = _resolve_source(str(source))
    config = _load_config(location, str(source))
    family = family_for(config.model_type)
    if prompt is not None and not family.open_vocabulary:
        raise ValueError(
            f"{family.name} has a fixed set of classes; a text prompt is for open-vocabulary models "
            "(Grounding DINO, MM Grounding DINO)"
        )
    _check_backbone(config, str(source))
    _check_weights(location, allow_pickle=allow_pickle)
    model = _load_model(location, str(source), allow_pickle=allow_pickle, family=family)
    if Path(location).is_dir():
        load_modules(model, location)  # CCTM / FINE saved beside the weights, if any
    model = model.to(device).eval()
    model.requires_grad_(False)
    processor = _load_processor(location, family)
    class_names = tuple(str(config.id2label.get(i, f"class_{i}")) for i in range(config.num_labels))
    detector = Detector(
        model=model,
        processor=processor,
        family=family,
        class_names=class_names,
        input_size=_default_input_size(processor),
        content_hash=_content_hash(model, processor),
        source=str(source),
        tokenizer=_load_tokenizer(location, str(source)) if family.open_vocabulary else None,
        input_multiple=input_multiple(config),
    )
    if family.open_vocabulary:
        detector = with_prompt(detector, prompt if prompt is not None else default_prompt(config.id2label))
    return detector


def _load_tokenizer(location: str, source: str):
    try:
        return AutoTokenizer.from_pretrained(location)
    except (OSError, ValueError) as error:
        raise FileNotFoundError(
            f"{source!r} is an open-vocabulary model and its text tokenizer could not be loaded "
            f"({error}); a save_pretrained folder needs the tokenizer files beside the weights"
        ) from error


def _resolve_source(source: str) -> str:
    if source in EMBEDDED_MODELS:
        folder = EMBEDDED_MODELS[source]
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"the embedded detector {source!r} is not trained yet: {folder} has no config.json. "
                "Pass a local folder or a hub id instead."
            )
        return str(folder)
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{path} is a folder but has no config.json (expected save_pretrained layout)"
            )
        return str(path)
    if path.exists():
        raise FileNotFoundError(f"{path} is a file; expected a folder in save_pretrained layout")
    if not _HUB_ID.match(source) or source.startswith((".", "~")):
        raise FileNotFoundError(
            f"model folder {source!r} does not exist (and it is not a hub id like 'org/name')"
        )
    if path.parent.is_dir():  # 'runs/demo' with a local 'runs/': a folder was meant, not a hub id
        raise FileNotFoundError(
            f"model folder {source!r} does not exist: {path.parent.resolve()} has no {path.name!r}"
            f"{_listing(path.parent)}"
        )
    return source


def _listing(folder: Path) -> str:
    """' (it holds: a, b, c)', naming the model folders (those with a config.json) first."""
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    models = [n for n in names if (folder / n / "config.json").is_file()]
    shown = (models or names)[:8]
    return (
        f" (model folders there: {', '.join(shown)})"
        if models
        else (f" (it holds: {', '.join(shown)})" if shown else "")
    )


def _load_config(location: str, source: str) -> transformers.PreTrainedConfig:
    try:
        return AutoConfig.from_pretrained(location, trust_remote_code=False)
    except OSError as error:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
        why = "offline mode (HF_HUB_OFFLINE=1) and it is not in the local cache" if offline else str(error)
        raise FileNotFoundError(
            f"{source!r} is not a local folder (no {Path(source).resolve()}), and as a hub id it "
            f"could not be loaded: {why}. Download it where the hub "
            "is reachable (e.g. `hf download ORG/NAME --local-dir DIR`) and pass that "
            "local folder instead."
        ) from error
    except ValueError as error:  # a config.json transformers cannot read (unknown model type)
        raise ValueError(f"{source!r} has a config transformers cannot read: {error}") from error


def _check_backbone(config: transformers.PreTrainedConfig, source: str) -> None:
    backbone = getattr(config, "backbone_config", None)
    backbone_type = getattr(backbone, "model_type", None) if backbone is not None else None
    if isinstance(backbone, dict):
        backbone_type = backbone.get("model_type")
    uses_timm = backbone_type == "timm_backbone" or getattr(config, "use_timm_backbone", False)
    if uses_timm and not is_timm_available():
        raise ImportError(
            f"{source!r} uses a timm backbone, and timm is not installed (it also needs torchvision). "
            "Install timm and torchvision, or use a checkpoint with a transformers backbone "
            "(e.g. RT-DETR, RT-DETRv2, D-FINE)."
        )


def _check_weights(location: str, *, allow_pickle: bool) -> None:
    path = Path(location)
    if not path.is_dir() or allow_pickle:
        return  # hub ids are checked by `use_safetensors=True` at load time
    if not any(path.glob("*.safetensors")) and any(path.glob("*.bin")):
        raise ValueError(
            f"{location} only has pickle weights (*.bin), which can run code when loaded. Convert them "
            "to safetensors, or pass allow_pickle=True (CLI: --allow-pickle) if you trust the source."
        )


def _load_model(location: str, source: str, *, allow_pickle: bool, family: Family) -> PreTrainedModel:
    auto_class = (
        AutoModelForZeroShotObjectDetection if family.open_vocabulary else AutoModelForObjectDetection
    )
    try:
        return auto_class.from_pretrained(
            location,
            attn_implementation="eager",
            dtype=torch.float32,  # fp16 / bf16 checkpoints run in float32 (CPU kernels, stable maps)
            use_safetensors=None if allow_pickle else True,
            trust_remote_code=False,
        )
    except ImportError:
        raise
    except Exception as error:  # safetensors, OSError and torch errors all mean unreadable weights
        if "safetensors" in str(error).lower() and not allow_pickle and not Path(location).is_dir():
            raise ValueError(
                f"{source!r} has no safetensors weights; pass allow_pickle=True (CLI: --allow-pickle) "
                "to load pickle weights if you trust the source."
            ) from error
        raise ValueError(
            f"could not read the weights of {source!r} (corrupt or incomplete file?): {error}"
        ) from error


def _load_processor(location: str, family: Family) -> object:
    path = Path(location)
    default_class = getattr(transformers, family.processor_class)
    if not path.is_dir() or (path / "preprocessor_config.json").is_file():
        try:
            processor = AutoImageProcessor.from_pretrained(location)
        except OSError:
            if path.is_dir():
                raise
        except (ImportError, ValueError):
            # a processor class that needs torchvision (RF-DETR's): the same settings, PIL backend
            return default_class.from_pretrained(location)
        else:
            # a full processor (Grounding DINO's: images and text) -> its image part
            return getattr(processor, "image_processor", processor)
    return default_class()


def _default_input_size(processor: object) -> int:
    size = processor.size
    value = getattr(size, "height", None) or getattr(size, "shortest_edge", None)
    if not value:
        raise ValueError(f"cannot tell the input size from processor size {size}")
    return int(value)


def _content_hash(model: PreTrainedModel, processor: object) -> str:
    digest = hashlib.sha256()
    digest.update(model.config.to_json_string().encode())
    digest.update(processor.to_json_string().encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").reshape(-1).contiguous().view(torch.uint8).numpy())
    return digest.hexdigest()
