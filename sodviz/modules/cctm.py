"""Cross-DINO's Cross Coding Twice Module (CCTM): backbone detail gated into encoder features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sodviz.hooks import wire_hook, wire_pre_hook


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a `[B, C, H, W]` map (each pixel normalised on its own)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class GlobalResponseNorm(nn.Module):
    """ConvNeXt V2's GRN on `[B, C, H, W]`: x + gamma * (x * N(x)) + beta, N = per-channel L2 over
    space divided by its mean over channels. gamma and beta start at 0 (an identity)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.norm(p=2, dim=(2, 3), keepdim=True)  # [B, C, 1, 1]
        normalised = spatial / (spatial.mean(dim=1, keepdim=True) + self.eps)
        return x + self.gamma * (x * normalised) + self.beta


class CCTM(nn.Module):
    """CCTM for one feature level (Cross-DINO eq. 1-3), on maps of `channels` channels.

    E' = sigmoid(GELU(LN(FC(E))));  E1 = E + B * (1 - E')                      (eq. 1, first coding)
    G = sigmoid(MLP2(GELU(MLP1(GRN(E1)))))   the cross gating map B'E'         (eq. 2)
    E_cf = 2 E * G + B * (1 - G)                                               (eq. 3, second coding)

    The module returns E + s * (E_cf - E) with a per-channel layer scale s that starts at 0, so
    inserting it into a trained detector changes nothing until fine-tuning moves s.
    """

    def __init__(self, channels: int, hidden_ratio: float = 1.0) -> None:
        super().__init__()
        hidden = max(1, round(channels * hidden_ratio))
        self.fc = nn.Conv2d(channels, channels, kernel_size=1)
        self.norm = LayerNorm2d(channels)
        self.grn = GlobalResponseNorm(channels)
        self.mlp1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.mlp2 = nn.Conv2d(hidden, channels, kernel_size=1)
        self.layer_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def maps(self, backbone: torch.Tensor, encoder: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every intermediate for `[B, C, H, W]` backbone (B) and encoder (E) maps of one level."""
        if backbone.shape != encoder.shape:
            raise ValueError(
                f"CCTM needs B and E of one shape, got {tuple(backbone.shape)} and {tuple(encoder.shape)}"
            )
        first_gate = torch.sigmoid(F.gelu(self.norm(self.fc(encoder))))  # E'
        first = encoder + backbone * (1 - first_gate)  # E1
        gate = torch.sigmoid(self.mlp2(F.gelu(self.mlp1(self.grn(first)))))  # B'E'
        fused = 2 * encoder * gate + backbone * (1 - gate)  # E_cf
        output = encoder + self.layer_scale * (fused - encoder)
        return {
            "B": backbone,
            "E": encoder,
            "E_prime": first_gate,
            "E1": first,
            "gate": gate,
            "E_cf": fused,
            "output": output,
        }

    def forward(self, backbone: torch.Tensor, encoder: torch.Tensor) -> torch.Tensor:
        return self.maps(backbone, encoder)["output"]


class CCTMStack(nn.Module):
    """One CCTM per level between RT-DETR's projected backbone maps and its hybrid encoder's outputs.

    Attached with two hooks on the hybrid encoder: the pre-hook keeps the projected backbone maps
    (B, before AIFI replaces the deepest one), the forward hook swaps the outputs E for E_cf, so
    the decoder's input projections read the fused maps. `recording` (a dict, or None) receives
    every level's maps while a `record_maps` block runs.
    """

    def __init__(self, channels: int, num_levels: int, hidden_ratio: float = 1.0) -> None:
        super().__init__()
        self.levels = nn.ModuleList(CCTM(channels, hidden_ratio) for _ in range(num_levels))
        self.recording: dict | None = None
        self._backbone: list[torch.Tensor] | None = None

    def attach(self, encoder: nn.Module) -> None:
        wire_pre_hook(encoder, self.keep_backbone)
        wire_hook(encoder, self.fuse)

    def keep_backbone(self, module: nn.Module, args: tuple) -> None:
        self._backbone = list(args[0])

    def fuse(self, module: nn.Module, args: tuple, output):
        backbone, self._backbone = self._backbone, None
        if backbone is None:
            raise RuntimeError("CCTM: the encoder ran without its inputs being seen (pre-hook missing)")
        encoder = list(output.last_hidden_state)
        if len(encoder) != len(self.levels):
            raise ValueError(f"CCTM has {len(self.levels)} levels, the encoder gave {len(encoder)}")
        fused = []
        for index, (cctm, b, e) in enumerate(zip(self.levels, backbone, encoder, strict=True)):
            maps = cctm.maps(b, e)
            if self.recording is not None:
                self.recording[f"cctm{index}"] = {k: v.detach() for k, v in maps.items()}
            fused.append(maps["output"])
        output.last_hidden_state = fused
        return output
