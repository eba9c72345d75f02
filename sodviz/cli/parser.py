"""`python -m sodviz`'s arguments: one small function per command, and the budget syntax."""

from __future__ import annotations

import argparse
from pathlib import Path

from sodviz.cli.serve import add_serve
from sodviz.cli.study_parsers import add_acs, add_erf, add_errors, add_explain, add_split_arguments

# sodviz.crops.fusion.MERGES / METRICS, written out so that `--help` imports nothing heavy (a test checks).
MERGES_CHOICES = ("nms", "nmm", "greedynmm", "wbf")
METRICS_CHOICES = ("iou", "ios")

COMMAND_ORDER = (
    "predict",
    "report",
    "models",
    "synth",
    "train",
    "evaluate",
    "benchmark",
    "erf",
    "errors",
    "acs",
    "analyze",
    "explain",
    "serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sodviz", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    _predict(commands)
    _report(commands)
    commands.add_parser("models", help="list the supported families and hub presets")
    for add in (
        _synth,
        _train,
        _evaluate,
        _benchmark,
        add_erf,
        add_errors,
        add_acs,
        _analyze,
        add_explain,
        add_serve,
    ):
        add(commands)
    for command in commands.choices.values():  # every command that runs a detector takes a prompt
        if any(action.dest == "model" for action in command._actions):
            command.add_argument(
                "--prompt",
                default=None,
                help="open-vocabulary models (Grounding DINO): the classes, 'car. person. boat.' "
                "(default: the data's categories, else the checkpoint's labels)",
            )
    return parser


DESCRIPTION = "See what a DETR-family detector attends to, and why it misses tiny objects."


def _report(commands) -> None:
    """`report IMAGE`: the analysis of one image as a self-contained HTML file."""
    report = commands.add_parser(
        "report", help="one image's detections, attention and ViCrop-Det as an HTML report that opens offline"
    )
    report.add_argument("image", type=Path)
    report.add_argument("--model", default="demo", help="'demo', a local folder, or a hub id")
    report.add_argument("--annotations", type=Path, default=None, help="COCO annotations of the image")
    report.add_argument("--out", type=Path, default=None, help="HTML file (default: IMAGE.sodviz.html)")
    report.add_argument("--threshold", type=float, default=0.3, help="score threshold (default 0.3)")
    report.add_argument("--input-size", type=int, default=None, help="model input size in pixels")
    report.add_argument("--letterbox", action="store_true", help="fixed-size families: keep the aspect")
    report.add_argument("--pages", default="detections,attention,vicrop", help="comma-separated pages")
    report.add_argument("--query", type=int, default=None, help="query for Attention (default: the top one)")
    report.add_argument("--k", type=int, default=5, help="ViCrop-Det crops (default 5)")
    report.add_argument("--allow-pickle", action="store_true", help="accept pickle (*.bin) weights")


def _predict(commands) -> None:
    """`predict IMAGE`: detections, attention PNGs."""
    predict = commands.add_parser(
        "predict", help="detect objects in one image; write COCO-style JSON and PNGs"
    )
    predict.add_argument("image", type=Path)
    predict.add_argument("--model", default="demo", help="'demo', a local folder, or a hub id")
    predict.add_argument("--threshold", type=float, default=0.3, help="score threshold (default 0.3)")
    predict.add_argument("--input-size", type=int, default=None, help="model input size in pixels")
    predict.add_argument(
        "--letterbox", action="store_true", help="fixed-size families: keep the aspect (pad), do not squash"
    )
    predict.add_argument(
        "--nms", type=float, default=None, help="per-class NMS IoU threshold (default: none)"
    )
    predict.add_argument("--image-id", type=int, default=0, help="image_id written in the JSON")
    predict.add_argument("--out", type=Path, default=None, help="detections JSON (default: stdout)")
    predict.add_argument("--overlay", type=Path, default=None, help="PNG with the detections drawn")
    predict.add_argument(
        "--attention", type=Path, default=None, help="PNG of the detections' aggregate attention"
    )
    predict.add_argument("--allow-pickle", action="store_true", help="accept pickle (*.bin) weights")


def _synth(commands) -> None:
    """`synth`: the generated small-object benchmark."""
    synth = commands.add_parser("synth", help="generate the small-object benchmark (COCO format)")
    synth.add_argument("--out", type=Path, default=Path("data/synth"))
    synth.add_argument("--train", type=int, default=640, help="number of train scenes (default 640)")
    synth.add_argument("--val", type=int, default=48, help="number of val scenes (default 48)")
    synth.add_argument("--test", type=int, default=100, help="number of test scenes (default 100)")
    synth.add_argument(
        "--fresh", type=int, default=0, help="scenes from seeds no other split uses (default 0: none)"
    )
    synth.add_argument("--workers", type=int, default=2)


def _train(commands) -> None:
    """`train`: the demo recipe, or fine-tuning with modules."""
    train = commands.add_parser(
        "train", help="train the small RT-DETR demo detector from scratch (defaults: its recipe)"
    )
    train.add_argument(
        "--data", default="data/synth/train", help="COCO folder with images/ and annotations.json"
    )
    train.add_argument("--val-data", default="data/synth/val")
    train.add_argument("--out", default="runs/demo")
    train.add_argument("--steps", type=int, default=4900)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--input-size", type=int, default=512)
    train.add_argument("--lr", type=float, default=4e-4)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1")
    train.add_argument(
        "--workers", type=int, default=12, help="processes making crops (the count shapes the stream)"
    )
    train.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    train.add_argument(
        "--init", default=None, help="fine-tune: start from this model folder (e.g. the demo's)"
    )
    train.add_argument(
        "--modules",
        default="",
        help="comma list of fine, cctm, boost: insert FINE / CCTM, use the Boost loss",
    )
    train.add_argument("--module-lr-scale", type=float, default=10.0, help="new modules learn at lr * this")
    train.add_argument("--warmup-steps", type=int, default=150)
    train.add_argument("--ema-decay", type=float, default=0.999)
    train.add_argument("--ema-warmup", type=int, default=300)
    train.add_argument("--eval-every", type=int, default=400, help="steps between val evaluations")


def _evaluate(commands) -> None:
    """`evaluate`: COCO / AI-TOD AP on a COCO dataset."""
    evaluate = commands.add_parser("evaluate", help="COCO / AI-TOD AP of a detector on a COCO-format dataset")
    add_split_arguments(evaluate)
    evaluate.add_argument("--input-size", type=int, default=None)
    evaluate.add_argument("--threshold", type=float, default=0.3, help="score threshold for TP/FP/FN counts")
    evaluate.add_argument(
        "--frame",
        choices=["input", "image"],
        default="input",
        help="size buckets in model-input pixels (default) or original pixels",
    )
    evaluate.add_argument("--max-images", type=int, default=None)
    evaluate.add_argument("--out", type=Path, default=None, help="write the figures as JSON")


def _benchmark(commands) -> None:
    """`benchmark`: base vs ViCrop-Det vs slicing at equal forward passes."""
    bench = commands.add_parser(
        "benchmark", help="base vs ViCrop-Det vs uniform slicing at equal forward passes"
    )
    add_split_arguments(bench)
    bench.add_argument(
        "--methods",
        default="base,vicrop,slicing",
        help="comma list of base, vicrop, vicrop_gated, slicing, slicing_only, asahi, random, density, "
        "oracle",
    )
    bench.add_argument(
        "--budgets", default="1-8", help="multiples of the full-image pass per image, e.g. 1-8 or 1,3,5"
    )
    bench.add_argument(
        "--budget-unit", choices=("passes", "gflops"), default="passes",
        help="count a budget in forward passes or in GFLOPs (torch's FLOP counter)",
    )  # fmt: skip
    bench.add_argument(
        "--crop-size", type=int, default=None,
        help="model input side of each crop and slice (default: the full image's)",
    )  # fmt: skip
    bench.add_argument(
        "--coco-backend", choices=("faster", "pycocotools"), default="faster",
        help="AP by faster-coco-eval (default; pycocotools' numbers, tested, in 3-4 %% of the time)",
    )  # fmt: skip
    bench.add_argument(
        "--pack", type=int, default=0, help="ViCrop-Det: pack up to N crops onto one canvas per pass (0: off)"
    )
    bench.add_argument(
        "--k-scales", default=None, help="ViCrop-Det window scales, e.g. 0.25,0.5 (default: the library's)"
    )
    bench.add_argument(
        "--max-overlap", type=float, default=None, help="ViCrop-Det: area chosen crops may share"
    )
    bench.add_argument(
        "--gate-min-uncertain", type=int, default=130,
        help="vicrop_gated: skip images with fewer uncertain queries (default: chosen on the "
        "generated val split for the demo detector; it refines 5 of 48 val scenes)",
    )  # fmt: skip
    bench.add_argument(
        "--merge",
        choices=MERGES_CHOICES,
        default=None,
        help="fusion of every method: SAHI's merges or weighted box fusion (default: nms)",
    )
    bench.add_argument(
        "--merges", default="",
        help="also these merges, comma list (e.g. nms,greedynmm,wbf): rows re-fusing each method's passes",
    )  # fmt: skip
    bench.add_argument("--match-metric", choices=METRICS_CHOICES, default=None, help="fusion: iou or ios")
    bench.add_argument("--match-threshold", type=float, default=None, help="fusion: boxes match from this")
    bench.add_argument(
        "--no-low-score-switch", action="store_true",
        help="fusion: keep the merge below a 0.1 score threshold (SAHI switches to NMS / IoU; the benchmark "
        "keeps detections from 0.01)",
    )  # fmt: skip
    bench.add_argument("--max-images", type=int, default=None)
    bench.add_argument("--out", type=Path, default=Path("runs/benchmark"))


def _analyze(commands) -> None:
    """`analyze`: every object of a dataset, why it was missed, stored for the Dataset page."""
    analyze = commands.add_parser(
        "analyze", help="analyse a whole dataset (misses and why, refinements) into the store the app reads"
    )
    add_split_arguments(analyze)
    analyze.add_argument(
        "--methods", default="base", help="comma list: base plus any of vicrop, vicrop_gated, slicing"
    )
    analyze.add_argument("--budgets", default="3", help="forward passes per refined image, e.g. 3 or 2,3,5")
    analyze.add_argument(
        "--store", type=Path, default=None, help="store folder (default: $SODVIZ_STORE, else runs/store)"
    )
    analyze.add_argument("--engine", choices=("local", "ray"), default="local")
    analyze.add_argument("--workers", type=int, default=2, help="Ray: actors, one detector each")
    analyze.add_argument("--gpus-per-worker", type=float, default=0.0, help="Ray: GPUs per actor")
    analyze.add_argument("--threshold", type=float, default=0.3, help="score threshold (default 0.3)")
    analyze.add_argument("--input-size", type=int, default=None)
    analyze.add_argument("--gate-min-uncertain", type=int, default=0, help="ViCrop-Det's gate")
    analyze.add_argument("--batch-images", type=int, default=16, help="images per stored batch")
