"""Benchmark: the cost of FINE (AATS and dense attention), CCTM and both in the demo detector at its
512 px input on CPU: latency ratio to base (target: FINE with AATS <= 1.10x), GFLOPs, parameters.

Each variant is the demo detector with the modules inserted (their cost does not depend on their
weights). Latency: median of a forward pass (batch 1, no grad) over interleaved rounds, so load on a
shared machine hits every variant alike. FLOPs: torch's FlopCounterMode (matmuls, convolutions and
attention; pooling and element-wise work are not counted).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_modules.py [--rounds 15] [--size 512]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sodviz.detector.loading import load_detector
from sodviz.modules import FineConfig, ModulesConfig, attach_modules

VARIANTS = {
    "base": None,
    "+FINE (AATS)": ModulesConfig(fine=FineConfig()),
    "+FINE (dense)": ModulesConfig(fine=FineConfig(sampling="dense")),
    "+CCTM": ModulesConfig(cctm=True),
    "+FINE +CCTM": ModulesConfig(cctm=True, fine=FineConfig()),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    demo = load_detector("demo").model
    models = {}
    for name, config in VARIANTS.items():
        model = copy.deepcopy(demo)
        models[name] = attach_modules(model, config) if config else model
    pixels = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    times = {name: [] for name in models}
    with torch.no_grad():
        flops = {}
        for name, model in models.items():
            model(pixel_values=pixels)  # warm-up
            with FlopCounterMode(display=False) as counter:
                model(pixel_values=pixels)
            flops[name] = counter.get_total_flops() / 1e9
        for _ in range(args.rounds):
            for name, model in models.items():
                start = time.perf_counter()
                model(pixel_values=pixels)
                times[name].append(time.perf_counter() - start)
    base_ms = statistics.median(times["base"]) * 1000
    base_params = sum(p.numel() for p in demo.parameters())
    threads = torch.get_num_threads()
    print(f"{args.size}x{args.size} input, batch 1, torch threads {threads}, {args.rounds} rounds")
    print("| variant | params (M) | +params (k) | GFLOPs | +GFLOPs | latency (ms) | ratio to base |")
    print("|---|---|---|---|---|---|---|")
    for name, model in models.items():
        params = sum(p.numel() for p in model.parameters())
        ms = statistics.median(times[name]) * 1000
        print(f"| {name} | {params / 1e6:.3f} | {(params - base_params) / 1e3:.1f} | {flops[name]:.2f} | "
              f"{flops[name] - flops['base']:+.2f} | {ms:.1f} | {ms / base_ms:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
