"""Average class score of ground-truth objects by size (Cross-DINO Fig. 3) for several detectors on
a COCO split: each object's score is the best same-class detection overlapping it at IoU 0.5.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/boost_scores.py --models runs/ft_base/model,demo-boost
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sodviz.detector.loading import load_detector
from sodviz.evaluation.coco import first_images, load_coco
from sodviz.evaluation.ground_truth import ground_truth_from_coco
from sodviz.evaluation.score_by_size import score_curve
from sodviz.imageio import load_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="runs/ft_base/model,demo-boost")
    parser.add_argument("--data", type=Path, default=Path("data/synth/test"))
    parser.add_argument("--max-images", type=int, default=None)
    args = parser.parse_args()
    coco = first_images(load_coco(args.data / "annotations.json"), args.max_images)
    scenes = [
        (
            load_image(args.data / "images" / record["file_name"]),
            ground_truth_from_coco(coco, image_id=record["id"]),
        )
        for record in coco["images"]
    ]
    curves = {name: score_curve(load_detector(name), scenes) for name in args.models.split(",")}
    first = next(iter(curves.values()))
    bins = [
        f"{lo:g}-{hi:g}" if hi < 1e8 else f">{lo:g}"
        for lo, hi in zip(first["low"], first["high"], strict=True)
    ]
    print(f"{len(scenes)} scenes; object size in model-input pixels; mean class score (objects)")
    print("| model | " + " | ".join(bins) + " |")
    print("|---|" + "---|" * len(bins))
    print("| objects | " + " | ".join(str(int(c)) for c in first["count"]) + " |")
    for name, curve in curves.items():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in curve["mean_score"]) + " |")


if __name__ == "__main__":
    main()
