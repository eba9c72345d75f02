"""The study commands of `python -m sodviz`: `benchmark` (ViCrop-Det vs slicing), `erf`, `errors`, `acs`,
`explain`."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from sodviz.cli.loading import load_model
from sodviz.cli.progress import progress_bar
from sodviz.cli.values import parse_budgets, parse_merges


def erf(args: argparse.Namespace) -> None:

    from sodviz.erf.fields import available_stages, compute_erf, random_twin
    from sodviz.erf.stages import stage_description
    from sodviz.imageio import load_image

    detector = load_model(args)
    suffixes = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in suffixes)[: args.n]
    if not paths:
        raise ValueError(f"no images in {args.images}")
    stages = tuple(args.stages.split(",")) if args.stages else available_stages(detector)
    for stage in stages:
        print(f"{stage:>9}  {stage_description(detector, stage)}")
    images = [load_image(path) for path in paths]
    models = {"erf": detector}
    if args.random_weights:
        models["erf_random"] = random_twin(detector)
    for name, model in models.items():
        with progress_bar(name, total=len(images)) as on_progress:
            result = compute_erf(
                model, images, stages=stages, input_size=args.input_size,
                on_progress=on_progress,
            )  # fmt: skip
        for row in result.table():
            print(
                f"{row['stage']:>9}  sigma {row['sigma']:7.2f} px"
                f"  (x {row['sigma_x']:.2f}, y {row['sigma_y']:.2f})  R2 {row['r2']:.3f}"
                f"  stride {row['stride']:.0f}  ratio {row['sigma_ratio']:.2f}"
            )
        print("wrote " + ", ".join(str(p) for p in write_erf(result, args.out, name=name, scale=args.scale)))


def benchmark(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from sodviz.crops.budget_report import write_figure, write_tables
    from sodviz.crops.budget_study import run_benchmark
    from sodviz.crops.vicrop import ViCropConfig

    detector = load_model(args, annotations=args.data)
    config = ViCropConfig(
        gate_min_uncertain=args.gate_min_uncertain, crop_size=args.crop_size, pack=args.pack
    )
    if args.k_scales is not None:
        config = replace(config, scales=tuple(float(v) for v in args.k_scales.split(",")))
    if args.max_overlap is not None:
        config = replace(config, max_overlap=args.max_overlap)
    chosen = {"merge": args.merge, "metric": args.match_metric, "threshold": args.match_threshold}
    chosen["low_score_nms"] = False if args.no_low_score_switch else None
    config = replace(
        config, fusion=replace(config.fusion, **{k: v for k, v in chosen.items() if v is not None})
    )
    with progress_bar("benchmark") as on_progress:
        rows = run_benchmark(
            detector,
            args.data,
            args.images,
            methods=tuple(args.methods.split(",")),
            budgets=parse_budgets(args.budgets),
            unit=args.budget_unit,
            coco_backend=args.coco_backend,
            merges=parse_merges(args.merges),
            vicrop=config,
            max_images=args.max_images,
            on_progress=on_progress,
        )
    written = [*write_tables(rows, args.out), *write_figure(rows, args.out)]
    print((args.out / "benchmark.md").read_text())
    print("wrote " + ", ".join(str(path) for path in written))


def errors(args: argparse.Namespace) -> None:

    from sodviz.evaluation.dataset import evaluate_detector
    from sodviz.evaluation.error_table import ERROR_COLUMNS, compare_errors
    from sodviz.evaluation.tables import markdown_table, write_rows

    reports = {}
    for name, source in (("base", args.base), ("modules", args.model)):
        detector = load_model(args, source, annotations=args.data)
        with progress_bar(name) as on_progress:
            reports[name] = evaluate_detector(
                detector, args.data, args.images, score_threshold=args.threshold, max_images=args.max_images,
                on_progress=on_progress,
            )  # fmt: skip
    rows = compare_errors(reports)
    print(f"base = {args.base}, modules = {args.model}; IoU 0.5, score >= {args.threshold}")
    print(markdown_table(rows, ERROR_COLUMNS))
    csv_path, _ = write_rows(rows, args.out, "errors", ERROR_COLUMNS)
    print(f"wrote {csv_path} and errors.md")


def acs(args: argparse.Namespace) -> None:
    import json

    import numpy as np

    from sodviz.acs.candidates import FEATURES
    from sodviz.acs.selectors import SELECTION_COLUMNS
    from sodviz.acs.study import label_split, run_study
    from sodviz.crops.vicrop import ViCropConfig
    from sodviz.evaluation.tables import markdown_table, write_rows

    detector = load_model(args, annotations=args.data)
    splits = {}
    for name, data, images in (("fit", args.fit_data, args.fit_images), ("test", args.data, args.images)):
        with progress_bar(name) as on_progress:
            splits[name] = label_split(
                detector, data, images, max_images=args.max_images,
                crops=ViCropConfig() if args.crops else None,
                on_progress=on_progress,
            )  # fmt: skip
    study = run_study(splits["fit"], splits["test"], top_heads=args.heads, blend=args.blend)
    count = len(splits["test"].candidates)
    print(f"{count} candidates for {study.with_candidates} of {study.objects} test objects")
    print(f"ACS-Free heads (layer, head), chosen on the fit split: {list(study.heads)}")
    entropy = [
        (b, c["pearson"][..., FEATURES.index("entropy")])
        for b, c in [("all", study.correlations), *study.bucket_correlations.items()]
    ]
    cells = [f"{b} {np.nanmin(r):.3f} / {np.nanmean(r):.3f}" for b, r in entropy if np.isfinite(r).any()]
    print(
        "entropy vs IoU on the fit split, Pearson r (most negative head / mean of heads): " + ", ".join(cells)
    )
    for pool, r in study.pearson.items():
        plain = ", ".join(f"{k} {v:.3f}" for k, v in r.items())
        within = ", ".join(f"{k} {v:.3f}" for k, v in study.within_pearson[pool].items())
        print(f"Pearson r with IoU on the test split ({pool}): {plain}; within objects: {within}")
    columns = ["pool", *SELECTION_COLUMNS]
    print(markdown_table(study.selection, columns))
    print(markdown_table(study.rescoring, list(study.rescoring[0])))
    write_rows(study.selection, args.out, "selection", columns)
    write_rows(study.rescoring, args.out, "rescoring", list(study.rescoring[0]))
    summary = {"heads": study.heads, "pearson": study.pearson, "within_pearson": study.within_pearson,
               "objects": study.objects,
               "with_candidates": study.with_candidates,
               "correlations": {k: v.tolist() for k, v in study.correlations.items()},
               "bucket_correlations": {b: {k: v.tolist() for k, v in c.items()}
                                       for b, c in study.bucket_correlations.items()}}  # fmt: skip
    (args.out / "acs.json").write_text(json.dumps(summary, indent=1))
    print(f"wrote {args.out}/selection.csv, rescoring.csv and acs.json")


def write_erf(result, out: Path, *, name: str = "erf", scale: str = "linear") -> list[Path]:
    """`{name}.json` and `{name}.csv` (the sigma table) and one `{name}_{stage}.png` per stage."""
    out.mkdir(parents=True, exist_ok=True)
    rows = result.table()
    written = [out / f"{name}.json", out / f"{name}.csv"]
    payload = {"images": result.images, "point_xy": result.point_xy.tolist(), "stages": rows}
    written[0].write_text(json.dumps(payload, indent=2, allow_nan=True))
    with open(written[1], "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    from sodviz.imageio import encode_png
    from sodviz.views.erf import erf_panel

    for stage, erf_map, fit in zip(result.stages, result.maps, result.fits, strict=True):
        path = out / f"{name}_{stage}.png"
        path.write_bytes(encode_png(erf_panel(erf_map, fit, scale=scale, point_xy=result.point_xy)))
        written.append(path)
    return written


def explain(args: argparse.Namespace) -> None:
    from sodviz.evaluation.tables import markdown_table, write_figure_files, write_rows
    from sodviz.explain.study import SUMMARY_COLUMNS, most_faithful, sample_objects, score_objects, study_rows
    from sodviz.views.explain import study_figure

    detector = load_model(args, annotations=args.data)
    methods = tuple(m for m in args.methods.split(",") if m)
    with progress_bar("objects") as on_progress:
        objects = sample_objects(
            detector, args.data, args.images, per_bucket=args.per_bucket, threshold=args.threshold,
            input_size=args.input_size, max_images=args.max_images, seed=args.seed, on_progress=on_progress,
        )  # fmt: skip
    if not objects:
        raise ValueError(f"{args.data} has no objects to explain")
    with progress_bar("explain") as on_progress:
        rows = score_objects(
            detector, objects, args.images, methods=methods, input_size=args.input_size, masks=args.masks,
            steps=args.steps, seed=args.seed, on_progress=on_progress,
        )  # fmt: skip
    summary = study_rows(rows, seed=args.seed)
    verdicts = most_faithful(rows, seed=args.seed)
    write_rows(rows, args.out, "objects", list(rows[0]))
    csv_path, md_path = write_rows(summary, args.out, "explain", SUMMARY_COLUMNS)
    shown = ["bucket", "method", "objects", "missed", "deletion_auc", "insertion_auc", "pointing", "energy"]
    text = (
        f"model {args.model}; {len(objects)} objects of {args.data}, up to {args.per_bucket} per size bucket "
        f"(sqrt(area) in model-input pixels); D-RISE {args.masks} masks; seed {args.seed}\n\n"
        + markdown_table(summary, SUMMARY_COLUMNS, digits=4)
        + "\nMost faithful per bucket and metric ('clear': the paired 95 % bootstrap interval of "
        "its difference to every other method on the same objects excludes zero; 'overlaps': not):\n\n"
        + markdown_table(verdicts, ["bucket", "metric", "best", "mean", "interval"])
    )  # fmt: skip
    md_path.write_text(text)
    print(markdown_table(summary, shown, digits=4))
    print(markdown_table(verdicts, ["bucket", "metric", "best", "mean", "interval"]))
    figures = write_figure_files(study_figure(summary), args.out, "explain")
    print("wrote " + ", ".join(str(p) for p in [csv_path, md_path, args.out / "objects.csv", *figures]))
