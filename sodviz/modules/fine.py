"""FINE's cross-level modulation with Alignment-Aware Token Sampling (AATS) before top-down fusion."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sodviz.hooks import wire_pre_hook

MODULATIONS = ("residual", "direct", "none")


@dataclass(frozen=True)
class FineConfig:
    """Options of FINE; the defaults are the paper's design, the others its ablations."""

    ratio: int = 2  # r: F_low is pooled with kernel r*k, F_high with k (r = 2 aligns the two grids)
    kernels: tuple[int, ...] = (1, 2)  # k per top-down fusion: (stride-16 fusion, stride-8 fusion)
    head_dim: int = 16  # per-head width of the bottleneck attention
    num_heads: int = 4  # bottleneck width = num_heads * head_dim
    sampling: str = "aats"  # "aats", or "dense": every pixel of both maps (vanilla attention)
    modulation: str = "residual"  # F_low * M + F_low; "direct": F_low * M; "none": F_low + M

    def __post_init__(self) -> None:
        if self.ratio not in (1, 2, 4):
            raise ValueError(f"FINE ratio r must be 1, 2 or 4, got {self.ratio}")
        if self.sampling not in ("aats", "dense"):
            raise ValueError(f"FINE sampling must be 'aats' or 'dense', got {self.sampling!r}")
        if self.modulation not in MODULATIONS:
            raise ValueError(f"FINE modulation must be one of {MODULATIONS}, got {self.modulation!r}")
        if any(k < 1 for k in self.kernels):
            raise ValueError(f"FINE kernels must be >= 1, got {self.kernels}")

    def to_dict(self) -> dict:
        return asdict(self)


def sample_tokens(feature: torch.Tensor, kernel: int) -> torch.Tensor:
    """AATS: average-pool `[B, C, H, W]` with a `kernel` x `kernel` window -> `[B, H*W/kernel^2, C]`
    tokens (ceil mode, so a map whose side is not a multiple keeps its border)."""
    if kernel > 1:
        feature = F.avg_pool2d(feature, kernel_size=kernel, stride=kernel, ceil_mode=True)
    return feature.flatten(2).transpose(1, 2)


class FineAttention(nn.Module):
    """Bottleneck multi-head cross-level attention for one fusion (FINE eq. 4-9).

    Queries come from F_low's tokens (pooled with r*k), keys and values from F_high's (pooled
    with k); the output projection gives a C-channel map on the query grid, upsampled by r*k to
    F_low's size: the modulation map M. The output projection starts at zero, so M = 0 at
    initialisation and every modulation mode is an identity (direct uses 1 + M).
    """

    def __init__(self, channels: int, kernel: int, config: FineConfig) -> None:
        super().__init__()
        self.kernel, self.config = kernel, config
        width = config.num_heads * config.head_dim
        self.norm_low = nn.GroupNorm(1, channels)
        self.norm_high = nn.GroupNorm(1, channels)
        self.query = nn.Linear(channels, width)
        self.key = nn.Linear(channels, width)
        self.value = nn.Linear(channels, width)
        self.out = nn.Linear(width, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def kernels(self) -> tuple[int, int]:
        """(F_low pooling, F_high pooling); (1, 1) for dense attention."""
        if self.config.sampling == "dense":
            return 1, 1
        return self.config.ratio * self.kernel, self.kernel

    def maps(self, high: torch.Tensor, low: torch.Tensor) -> dict[str, torch.Tensor]:
        """F_high `[B, C, h, w]` and F_low `[B, C, H, W]` -> M, the aligned F_low and the tokens."""
        low_kernel, high_kernel = self.kernels
        queries = sample_tokens(self.norm_low(low), low_kernel)  # [B, Nq, C]
        keys = sample_tokens(self.norm_high(high), high_kernel)  # [B, Nk, C]
        batch, num_queries, _ = queries.shape
        heads, head_dim = self.config.num_heads, self.config.head_dim
        q = self.query(queries).view(batch, num_queries, heads, head_dim).transpose(1, 2)
        k = self.key(keys).view(batch, -1, heads, head_dim).transpose(1, 2)
        v = self.value(keys).view(batch, -1, heads, head_dim).transpose(1, 2)
        attended = F.scaled_dot_product_attention(q, k, v)  # [B, heads, Nq, head_dim]
        attended = attended.transpose(1, 2).reshape(batch, num_queries, heads * head_dim)
        grid_h, grid_w = -(-low.shape[2] // low_kernel), -(-low.shape[3] // low_kernel)
        modulation = self.out(attended).transpose(1, 2).reshape(batch, -1, grid_h, grid_w)
        if low_kernel > 1:
            modulation = modulation.repeat_interleave(low_kernel, 2).repeat_interleave(low_kernel, 3)
        modulation = modulation[:, :, : low.shape[2], : low.shape[3]]  # M, [B, C, H, W]
        if self.config.modulation == "residual":
            aligned = low * modulation + low
        elif self.config.modulation == "direct":
            aligned = low * (1 + modulation)
        else:
            aligned = low + modulation
        return {
            "F_high": high,
            "F_low": low,
            "M": modulation,
            "aligned": aligned,
            "query_tokens": queries,
            "key_tokens": keys,
        }

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        return self.maps(high, low)["aligned"]


class FineStack(nn.Module):
    """One FINE per top-down fusion of RT-DETR's hybrid encoder.

    Attached as a forward pre-hook on each `fpn_blocks[i]`, whose input is
    concat([nearest-2x(lateral(F_high)), F_low]): F_high is read back from the upsampled half
    (exact for nearest upsampling), F_low is replaced by the aligned F_low, and the block fuses
    as before. `recording` (a dict, or None) receives each fusion's maps during `record_maps`.
    """

    def __init__(self, channels: int, config: FineConfig) -> None:
        super().__init__()
        self.config = config
        self.fusions = nn.ModuleList(FineAttention(channels, k, config) for k in config.kernels)
        self.recording: dict | None = None

    def attach(self, fpn_blocks: nn.ModuleList) -> None:
        if len(fpn_blocks) != len(self.fusions):
            raise ValueError(f"FINE has {len(self.fusions)} fusions, the encoder has {len(fpn_blocks)}")
        for index, block in enumerate(fpn_blocks):
            wire_pre_hook(block, self._hook(index))

    def _hook(self, index: int):
        return _FusionHook(self, index)

    def modulate(self, index: int, fused_input: torch.Tensor) -> torch.Tensor:
        upsampled, low = fused_input.chunk(2, dim=1)
        high = upsampled[:, :, ::2, ::2]
        maps = self.fusions[index].maps(high, low)
        if self.recording is not None:
            self.recording[f"fine{index}"] = {k: v.detach() for k, v in maps.items()}
        return torch.cat([upsampled, maps["aligned"]], dim=1)


class _FusionHook:
    """A picklable, deep-copyable pre-hook bound to one fusion of a FineStack."""

    def __init__(self, stack: FineStack, index: int) -> None:
        self.stack, self.index = stack, index

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        return (self.stack.modulate(self.index, args[0]),)
