"""Trainable small-object modules for RT-DETR: CCTM (Cross-DINO) and FINE (cross-level modulation)."""

from sodviz.modules.attach import (
    ModulesConfig,
    attach_modules,
    hybrid_encoder,
    load_modules,
    modules_of,
    record_maps,
    save_modules,
    split_state_dict,
)
from sodviz.modules.cctm import CCTM, CCTMStack
from sodviz.modules.fine import FineAttention, FineConfig, FineStack, sample_tokens

__all__ = [
    "CCTM",
    "CCTMStack",
    "FineAttention",
    "FineConfig",
    "FineStack",
    "ModulesConfig",
    "attach_modules",
    "hybrid_encoder",
    "load_modules",
    "modules_of",
    "record_maps",
    "sample_tokens",
    "save_modules",
    "split_state_dict",
]
