"""The everyday commands: predict, report, models, synth, train, evaluate (heavy imports inside each)."""

from __future__ import annotations

import argparse
import json
import sys

from sodviz.cli.loading import load_model
from sodviz.cli.progress import progress_bar
from sodviz.detector.families import FAMILIES, HUB_PRESETS


def models(args: argparse.Namespace) -> None:
    print(models_text())


def models_text() -> str:
    lines = [f"Supported families ({len(FAMILIES)}): name, model_type, classes, backbone, attention capture"]
    lines += [
        f"  {family.name:<17} {family.model_type:<17} "
        f"{'text prompt' if family.open_vocabulary else 'fixed':<11} {family.backbone:<3}  {family.capture}"
        for family in FAMILIES.values()
    ]
    lines += ["", "Hub presets (need the hub, or a local copy):"]
    lines += [f"  {hub_id:<62} {FAMILIES[model_type].name}" for hub_id, model_type in HUB_PRESETS]
    lines += ["", "Also: 'demo' (the embedded demo detector) or any local save_pretrained folder."]
    return "\n".join(lines)


def synth(args: argparse.Namespace) -> None:

    from sodviz.synth.datasets import write_dataset

    for split in ("train", "val", "test", "fresh"):
        count = getattr(args, split)
        if not count:  # a split asked for with 0 scenes is left as it is (not emptied)
            continue
        with progress_bar(f"synth {split}", total=count) as on_progress:
            folder = write_dataset(args.out, split, count, workers=args.workers, on_progress=on_progress)
        print((folder / "stats.json").read_text())


def train_config(args: argparse.Namespace):
    """The `TrainConfig` a `train` command line asks for (its defaults are the demo recipe)."""
    from sodviz.training.recipe import TrainConfig

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

    from sodviz.evaluation.dataset import attention_summary, evaluate_detector

    detector = load_model(args, annotations=args.data)
    with progress_bar("evaluate") as on_progress:
        report = evaluate_detector(
            detector,
            args.data,
            args.images,
            input_size=args.input_size,
            score_threshold=args.threshold,
            frame=args.frame,
            max_images=args.max_images,
            on_progress=on_progress,
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
    from sodviz.detector.preprocess import input_summary
    from sodviz.imageio import open_image, save_image
    from sodviz.views.render import draw_detections, overlay_heatmap

    decoded = open_image(args.image)  # as the app decodes an upload
    image = decoded.image
    detector = load_model(args)
    result = run_inference(detector, image, input_size=args.input_size, letterbox=args.letterbox, cache=None)
    print(input_summary(result.transform).replace("**", ""), file=sys.stderr)
    detections = to_detections(result, score_threshold=args.threshold, nms=args.nms)
    entropy = query_attention_entropy(result)
    records = coco_records(detections, entropy, image_id=args.image_id, scale=decoded.scale)
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


def coco_records(detections, entropy, *, image_id: int, scale: float = 1.0) -> list[dict]:
    """COCO results format (bbox = [x, y, w, h]) plus the query index and its attention entropy.

    Boxes are divided by `scale` (the decoding's downscale), so they are in the file's pixels."""
    from sodviz.evaluation.coco import coco_results

    queries = detections.data["query_index"]
    return coco_results(
        detections.xyxy / scale,
        detections.confidence,
        detections.class_id,
        image_id=image_id,
        category_name=detections.data["class_name"],
        query_index=queries,
        attention_entropy=entropy[queries],
    )


def report(args: argparse.Namespace) -> None:
    """One image's Detections, Attention and ViCrop-Det pages as a self-contained HTML report."""
    from sodviz.crops.vicrop import ViCropConfig, run_vicrop
    from sodviz.detector.inference import run_inference
    from sodviz.evaluation.ground_truth import parse_annotations
    from sodviz.imageio import open_image
    from sodviz.notices import notify
    from sodviz.views.detections import detections_view, query_attention_view
    from sodviz.views.report import (
        ReportSection,
        attention_section,
        detections_section,
        report_html,
        report_meta,
        settings_of,
        vicrop_section,
    )
    from sodviz.views.vicrop import vicrop_view

    pages = [p.strip() for p in args.pages.split(",") if p.strip()]
    unknown = sorted(set(pages) - set(REPORT_PAGES))
    if not pages:
        raise ValueError(f"--pages is empty; choose from {', '.join(REPORT_PAGES)}")
    if unknown:
        raise ValueError(f"--pages: unknown {unknown}; choose from {', '.join(REPORT_PAGES)}")
    decoded = open_image(args.image)
    image = decoded.image
    truth = None
    if args.annotations is not None:
        truth = parse_annotations(
            args.annotations.read_bytes(), file_name=args.image.name, scale=decoded.scale
        )
        notify(truth.notices)
    detector = load_model(args, annotations=args.annotations)
    result = run_inference(detector, image, input_size=args.input_size, letterbox=args.letterbox, cache=None)
    found = detections_view(result, score_threshold=args.threshold, truth=truth)
    sections = []
    if "detections" in pages:
        sections.append(
            detections_section(image, found, truth=truth, settings={"score threshold": args.threshold})
        )
    queries = found.detections.data["query_index"]
    if "attention" in pages and args.query is not None and args.query not in queries:
        raise ValueError(f"--query {args.query} is not a detection above --threshold {args.threshold}")
    if "attention" in pages and not len(queries):
        note = f"No detection above the score threshold {args.threshold}: lower --threshold to see attention."
        sections.append(
            ReportSection("Attention", notes=(note,), settings={"score threshold": args.threshold})
        )
    elif "attention" in pages:
        query = int(queries[0]) if args.query is None else args.query
        view = query_attention_view(result, image, query=query, layer=None, head=None, opacity=0.5)
        sections.append(attention_section(view, found, label=f"q{query}", settings={"query": query}))
    if "vicrop" in pages:
        config = ViCropConfig(k=args.k)
        outcome = run_vicrop(detector, image, config=config, cache=None)
        view = vicrop_view(
            outcome, image, scale=config.scales[0], score_threshold=args.threshold,
            class_names=result.class_names, truth=truth,
        )  # fmt: skip
        settings = {"score threshold": args.threshold} | settings_of(config)
        sections.append(vicrop_section(view, outcome.plan, passes=outcome.forward_passes, settings=settings))
    meta = report_meta(detector, args.image.name, image, result, truth=truth, letterbox=args.letterbox)
    out = args.out or args.image.with_suffix(".sodviz.html")
    out.write_text(report_html(sections, meta=meta, title=f"sodviz report: {args.image.name}"))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB; {', '.join(s.title for s in sections)})")


REPORT_PAGES = ("detections", "attention", "vicrop")
