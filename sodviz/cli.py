"""Command line: `python -m sodviz predict|models`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from sodviz.families import FAMILIES, HUB_PRESETS


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "models":
            print(models_text())
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


def predict(args: argparse.Namespace) -> None:
    from sodviz.attention import aggregate_attention_map, query_attention_entropy
    from sodviz.imageio import load_image, save_image
    from sodviz.inference import run_inference, to_detections
    from sodviz.models import load_detector
    from sodviz.render import draw_detections, overlay_heatmap

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
    records = []
    for i in range(len(detections)):
        x0, y0, x1, y1 = (float(v) for v in detections.xyxy[i])
        query = int(detections.data["query_index"][i])
        records.append(
            {
                "image_id": image_id,
                "category_id": int(detections.class_id[i]),
                "category_name": str(detections.data["class_name"][i]),
                "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                "score": round(float(detections.confidence[i]), 5),
                "query_index": query,
                "attention_entropy": round(float(entropy[query]), 5),
            }
        )
    return records
