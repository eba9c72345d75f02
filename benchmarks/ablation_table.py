"""The module ablation (issue 7): the demo detector fine-tuned five ways with one budget and seed
(benchmarks/finetune_ablation.sh), scored on the test split like the papers' tables.

Columns: AP, AP50, AP_S and the AI-TOD buckets (model-input pixels), TP / FP / FN at IoU 0.5 and
score 0.3, parameters, and the latency ratio to the fine-tuned base (median forward pass at the
input size, interleaved rounds). The untouched demo detector is listed for reference.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ablation_table.py [--runs runs] [--out runs/ablation]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sodviz.detector.loading import load_detector
from sodviz.evaluation.dataset import evaluate_detector
from sodviz.evaluation.tables import markdown_table, write_rows

VARIANTS = {"demo (not fine-tuned)": "demo", "base": "ft_base", "+FINE": "ft_fine", "+CCTM": "ft_cctm",
            "+Boost": "ft_boost", "+all": "ft_all"}  # fmt: skip
COLUMNS = ["variant", "AP", "AP50", "AP_S", "AP_vt", "AP_t", "AP_s", "AP_m", "AP50_vt", "AP50_t", "tp", "fp",
           "fn", "params_M", "latency_ratio"]  # fmt: skip


def latency(models: dict, size: int, rounds: int) -> dict[str, float]:
    pixels = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    times = {name: [] for name in models}
    with torch.no_grad():
        for model in models.values():
            model(pixel_values=pixels)
        for _ in range(rounds):
            for name, model in models.items():
                start = time.perf_counter()
                model(pixel_values=pixels)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--data", type=Path, default=Path("data/synth/test"))
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    args = parser.parse_args()
    detectors = {}
    for name, run in VARIANTS.items():
        folder = "demo" if run == "demo" else args.runs / run / "model"
        if run == "demo" or folder.is_dir():
            detectors[name] = load_detector(folder)
        else:
            print(f"skipping {name}: {folder} not found")
    times = latency({n: d.model for n, d in detectors.items()}, size=512, rounds=args.rounds)
    reference = times.get("base", times[next(iter(times))])
    rows = []
    for name, detector in detectors.items():
        report = evaluate_detector(detector, args.data / "annotations.json", args.data / "images",
                                   max_images=args.max_images)  # fmt: skip
        counts = {k: sum(c[k] for c in report.counts.values()) for k in ("tp", "fp", "fn")}
        params = sum(p.numel() for p in detector.model.parameters()) / 1e6
        rows.append({"variant": name} | {k: report.metrics[k] for k in COLUMNS[1:10]} | counts
                    | {"params_M": params, "latency_ratio": times[name] / reference})  # fmt: skip
        print(markdown_table(rows[-1:], COLUMNS), flush=True)
    print(markdown_table(rows, COLUMNS))
    write_rows(rows, args.out, "ablation", COLUMNS)
    print(f"wrote {args.out}/ablation.csv and ablation.md")


if __name__ == "__main__":
    main()
