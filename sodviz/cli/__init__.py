"""Command line: `python -m sodviz predict|models`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from sodviz.cli.studies import STUDIES, add_study_parsers
from sodviz.detector.families import FAMILIES, HUB_PRESETS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sodviz", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser(
        "predict", help="detect objects in one image; write COCO-style JSON and PNGs"
    )
    predict.add_argument("image", type=Path)
    predict.add_argument("--model", default="demo", help="'demo', a local folder, or a hub id")
    predict.add_argument("--threshold", type=float, default=0.3, help="score threshold (default 0.3)")
    predict.add_argument("--input-size", type=int, default=None, help="model input size in pixels")
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

    commands.add_parser("models", help="list the supported families and hub presets")

    synth = commands.add_parser("synth", help="generate the small-object benchmark (COCO format)")
    synth.add_argument("--out", type=Path, default=Path("data/synth"))
    synth.add_argument("--train", type=int, default=640, help="number of train scenes (default 640)")
    synth.add_argument("--val", type=int, default=48, help="number of val scenes (default 48)")
    synth.add_argument("--test", type=int, default=100, help="number of test scenes (default 100)")
    synth.add_argument("--workers", type=int, default=2)

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

    evaluate = commands.add_parser("evaluate", help="COCO / AI-TOD AP of a detector on a COCO-format dataset")
    evaluate.add_argument("--data", type=Path, required=True, help="COCO annotations JSON")
    evaluate.add_argument("--images", type=Path, required=True, help="folder of the images it names")
    evaluate.add_argument("--model", default="demo")
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

    add_study_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "models":
            print(models_text())
        elif args.command == "synth":
            synth(args)
        elif args.command in STUDIES:
            import sodviz.cli.studies

            getattr(sodviz.cli.studies, args.command)(args)
        elif args.command == "train":
            train(args)
        elif args.command == "evaluate":
            evaluate(args)
        else:
            predict(args)
    except (FileNotFoundError, ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def models_text() -> str:
    lines = ["Supported families (model_type):"]
    lines += [
        f"  {family.name:<17} {family.model_type:<17} {'deformable' if family.deformable else 'dense'}"
        for family in FAMILIES.values()
    ]
    lines += ["", "Hub presets (need the hub, or a local copy):"]
    lines += [f"  {hub_id:<40} {FAMILIES[model_type].name}" for hub_id, model_type in HUB_PRESETS]
    lines += ["", "Also: 'demo' (the embedded demo detector) or any local save_pretrained folder."]
    return "\n".join(lines)


def synth(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from sodviz.synth.datasets import write_dataset

    for split in ("train", "val", "test"):
        count = getattr(args, split)
        with tqdm(total=count, desc=f"synth {split}") as bar:
            folder = write_dataset(
                args.out, split, count, workers=args.workers, on_progress=lambda f: bar.update(1)
            )
        print((folder / "stats.json").read_text())


def train_config(args: argparse.Namespace):
    """The `TrainConfig` a `train` command line asks for (its defaults are the demo recipe)."""
    from sodviz.training.loop import TrainConfig

    return TrainConfig(
        data=args.data,
        val_data=args.val_data or None,
        out=args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        input_size=args.input_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        workers=args.workers,
        init=args.init,
        modules=tuple(m for m in args.modules.split(",") if m),
        module_lr_scale=args.module_lr_scale,
        warmup_steps=args.warmup_steps,
        ema_decay=args.ema_decay,
        ema_warmup=args.ema_warmup,
        eval_every=args.eval_every,
    )


def train(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from sodviz.training.loop import train as run_training

    config = train_config(args)
    with tqdm(total=config.steps, desc="train") as bar, open(f"{config.out}.log.jsonl", "a") as log:

        def progress(step: int, record: dict) -> None:
            bar.n = step
            bar.set_postfix(loss=f"{record['loss']:.2f}", refresh=False)
            bar.refresh()
            log.write(json.dumps(record) + "\n")
            log.flush()
            if "val" in record:
                tqdm.write(f"step {step}: val " + " ".join(f"{k}={v:.3f}" for k, v in record["val"].items()))

        folder = run_training(config, resume=not args.no_resume, on_progress=progress)
    print(f"exported {folder}")


def evaluate(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from sodviz.detector.loading import load_detector
    from sodviz.evaluation.dataset import attention_summary, evaluate_detector

    detector = load_detector(args.model)
    with tqdm(total=100, desc="evaluate") as bar:
        report = evaluate_detector(
            detector,
            args.data,
            args.images,
            input_size=args.input_size,
            score_threshold=args.threshold,
            frame=args.frame,
            max_images=args.max_images,
            on_progress=lambda f: bar.update(round(100 * f) - bar.n),
        )
    print(evaluation_text(report))
    if args.out is not None:
        figures = {
            "model": args.model,
            "data": str(args.data),
            "frame": report.frame,
            "metrics": report.metrics,
            "score_threshold": report.score_threshold,
            "counts": report.counts,
            "attention_in_box_2x": attention_summary(report),
        }
        args.out.write_text(json.dumps(figures, indent=1))


def parse_budgets(text: str) -> tuple[int, ...]:
    """ "1-8" -> (1, ..., 8); "1,3,5" -> (1, 3, 5)."""
    if "-" in text:
        low, high = (int(v) for v in text.split("-", 1))
        return tuple(range(low, high + 1))
    return tuple(int(v) for v in text.split(","))


def evaluation_text(report) -> str:
    from sodviz.evaluation.dataset import attention_summary

    lines = [f"AP metrics (size buckets in {report.frame} pixels):"]
    lines += [f"  {name:<8} {value:.4f}" for name, value in report.metrics.items()]
    lines += [f"TP/FP/FN at IoU 0.5, score >= {report.score_threshold}:"]
    lines += [
        f"  {bucket:<3} tp {c['tp']:>6}  fp {c['fp']:>6}  fn {c['fn']:>6}"
        for bucket, c in report.counts.items()
    ]
    summary = attention_summary(report)
    if summary:
        lines.append("attention share inside 2x the matched object's box (last layer):")
        lines += [
            f"  {name:<3} median {s['median']:.3f}  p10 {s['p10']:.3f}  over {s['matched']} matched"
            for name, s in summary.items()
        ]
    return "\n".join(lines)


def predict(args: argparse.Namespace) -> None:
    from sodviz.attention.maps import aggregate_attention_map, query_attention_entropy
    from sodviz.detector.inference import run_inference, to_detections
    from sodviz.detector.loading import load_detector
    from sodviz.imageio import load_image, save_image
    from sodviz.views.render import draw_detections, overlay_heatmap

    image = load_image(args.image)
    detector = load_detector(args.model, allow_pickle=args.allow_pickle)
    result = run_inference(detector, image, input_size=args.input_size, cache=None)
    detections = to_detections(result, score_threshold=args.threshold, nms=args.nms)
    entropy = query_attention_entropy(result)
    records = coco_records(detections, entropy, image_id=args.image_id)
    text = json.dumps(records, indent=1)
    if args.out is None:
        print(text)
    else:
        args.out.write_text(text)
    if args.overlay is not None:
        save_image(args.overlay, draw_detections(image, detections))
    if args.attention is not None:
        queries = detections.data["query_index"]
        heat = aggregate_attention_map(result, queries) if len(queries) else aggregate_attention_map(result)
        save_image(args.attention, overlay_heatmap(image, result.transform.grid_to_image(heat)))
    print(
        f"{len(detections)} detections above {args.threshold} ({result.num_queries} queries)", file=sys.stderr
    )


def coco_records(detections, entropy, *, image_id: int) -> list[dict]:
    """COCO results format (bbox = [x, y, w, h]) plus the query index and its attention entropy."""
    from sodviz.evaluation.coco import coco_results

    queries = detections.data["query_index"]
    return coco_results(
        detections.xyxy,
        detections.confidence,
        detections.class_id,
        image_id=image_id,
        category_name=detections.data["class_name"],
        query_index=queries,
        attention_entropy=entropy[queries],
    )
