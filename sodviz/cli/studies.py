"""The study commands of `python -m sodviz`: `benchmark` (ViCrop-Det vs slicing), `erf`, `errors`, `acs`."""

from __future__ import annotations

import argparse
from pathlib import Path

STUDIES = ("benchmark", "erf", "errors", "acs")  # command names = the functions below


def add_study_parsers(commands) -> None:
    """The study commands' arguments, on `python -m sodviz`'s subparsers."""
    bench = commands.add_parser(
        "benchmark", help="base vs ViCrop-Det vs uniform slicing at equal forward passes"
    )
    bench.add_argument("--data", type=Path, required=True, help="COCO annotations JSON")
    bench.add_argument("--images", type=Path, required=True, help="folder of the images it names")
    bench.add_argument("--model", default="demo")
    bench.add_argument(
        "--methods", default="base,vicrop,slicing", help="comma list of base, vicrop, vicrop_gated, slicing"
    )
    bench.add_argument("--budgets", default="1-8", help="forward passes per image, e.g. 1-8 or 1,3,5")
    bench.add_argument(
        "--k-scales", default=None, help="ViCrop-Det window scales, e.g. 0.25,0.5 (default: the library's)"
    )
    bench.add_argument(
        "--max-overlap", type=float, default=None, help="ViCrop-Det: area chosen crops may share"
    )
    bench.add_argument("--gate-min-uncertain", type=int, default=0, help="vicrop_gated: skip below this many")
    bench.add_argument("--max-images", type=int, default=None)
    bench.add_argument("--out", type=Path, default=Path("runs/benchmark"))

    erf = commands.add_parser("erf", help="effective receptive field per stage, with a Gaussian sigma")
    erf.add_argument("--model", default="demo")
    erf.add_argument("--images", type=Path, required=True, help="folder of images (png, jpg, ...)")
    erf.add_argument("--n", type=int, default=50, help="average over the first N images (sorted by name)")
    erf.add_argument("--stages", default=None, help="comma list, e.g. stage1,stage4 (default: every stage)")
    erf.add_argument("--input-size", type=int, default=None)
    erf.add_argument("--scale", choices=("linear", "log"), default="linear")
    erf.add_argument("--random-weights", action="store_true", help="also the same architecture, untrained")
    erf.add_argument("--out", type=Path, default=Path("runs/erf"))
    errors = commands.add_parser(
        "errors", help="TP/FP/FN, precision, recall and F1 per size of a base vs a module detector"
    )
    errors.add_argument("--data", type=Path, required=True, help="COCO annotations JSON")
    errors.add_argument("--images", type=Path, required=True, help="folder of the images it names")
    errors.add_argument("--model", required=True, help="the detector with modules (folder or hub id)")
    errors.add_argument("--base", default="demo", help="the detector to compare with (default: demo)")
    errors.add_argument("--threshold", type=float, default=0.3, help="score threshold (default 0.3)")
    errors.add_argument("--max-images", type=int, default=None)
    errors.add_argument("--out", type=Path, default=Path("runs/errors"), help="writes errors.csv / .md")

    acs = commands.add_parser(
        "acs", help="ACS: pick candidate boxes by attention entropy (free) or a learned IoU regressor"
    )
    acs.add_argument("--data", type=Path, required=True, help="COCO annotations JSON of the split to report")
    acs.add_argument("--images", type=Path, required=True, help="folder of the images it names")
    acs.add_argument("--fit-data", type=Path, required=True, help="COCO JSON of the split to fit on (val)")
    acs.add_argument("--fit-images", type=Path, required=True)
    acs.add_argument("--model", default="demo")
    acs.add_argument("--max-images", type=int, default=None, help="per split")
    acs.add_argument("--heads", type=int, default=4, help="discriminative heads ACS-Free reads")
    acs.add_argument(
        "--crops", action="store_true", help="add the queries of ViCrop-Det's crops (default config)"
    )
    acs.add_argument("--blend", type=float, default=0.5, help="rescoring: conf^(1-b) * predicted IoU^b")
    acs.add_argument("--out", type=Path, default=Path("runs/acs"))


def erf(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from sodviz.detector.loading import load_detector
    from sodviz.erf.fields import available_stages, compute_erf, random_twin
    from sodviz.imageio import load_image
    from sodviz.views.erf import write_erf

    detector = load_detector(args.model)
    suffixes = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in suffixes)[: args.n]
    if not paths:
        raise ValueError(f"no images in {args.images}")
    stages = tuple(args.stages.split(",")) if args.stages else available_stages(detector)
    images = [load_image(path) for path in paths]
    models = {"erf": detector}
    if args.random_weights:
        models["erf_random"] = random_twin(detector)
    for name, model in models.items():
        with tqdm(total=len(images), desc=name) as bar:
            result = compute_erf(
                model, images, stages=stages, input_size=args.input_size,
                on_progress=lambda f, bar=bar: bar.update(round(f * len(images)) - bar.n),
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

    from tqdm import tqdm

    from sodviz.cli import parse_budgets
    from sodviz.crops.budget_study import run_benchmark, write_figure, write_tables
    from sodviz.crops.vicrop import ViCropConfig
    from sodviz.detector.loading import load_detector

    detector = load_detector(args.model)
    config = ViCropConfig(gate_min_uncertain=args.gate_min_uncertain)
    if args.k_scales is not None:
        config = replace(config, scales=tuple(float(v) for v in args.k_scales.split(",")))
    if args.max_overlap is not None:
        config = replace(config, max_overlap=args.max_overlap)
    with tqdm(total=100, desc="benchmark") as bar:
        rows = run_benchmark(
            detector,
            args.data,
            args.images,
            methods=tuple(args.methods.split(",")),
            budgets=parse_budgets(args.budgets),
            vicrop=config,
            max_images=args.max_images,
            on_progress=lambda f: bar.update(round(100 * f) - bar.n),
        )
    written = [*write_tables(rows, args.out), *write_figure(rows, args.out)]
    print((args.out / "benchmark.md").read_text())
    print("wrote " + ", ".join(str(path) for path in written))


def errors(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from sodviz.detector.loading import load_detector
    from sodviz.evaluation.dataset import evaluate_detector
    from sodviz.evaluation.error_table import ERROR_COLUMNS, compare_errors
    from sodviz.evaluation.tables import markdown_table, write_rows

    reports = {}
    for name, source in (("base", args.base), ("modules", args.model)):
        detector = load_detector(source)
        with tqdm(total=100, desc=name) as bar:
            reports[name] = evaluate_detector(
                detector, args.data, args.images, score_threshold=args.threshold, max_images=args.max_images,
                on_progress=lambda f, bar=bar: bar.update(round(100 * f) - bar.n),
            )  # fmt: skip
    rows = compare_errors(reports)
    print(f"base = {args.base}, modules = {args.model}; IoU 0.5, score >= {args.threshold}")
    print(markdown_table(rows, ERROR_COLUMNS))
    csv_path, _ = write_rows(rows, args.out, "errors", ERROR_COLUMNS)
    print(f"wrote {csv_path} and errors.md")


def acs(args: argparse.Namespace) -> None:
    import json

    import numpy as np
    from tqdm import tqdm

    from sodviz.acs.candidates import FEATURES
    from sodviz.acs.selectors import SELECTION_COLUMNS
    from sodviz.acs.study import label_split, run_study
    from sodviz.crops.vicrop import ViCropConfig
    from sodviz.detector.loading import load_detector
    from sodviz.evaluation.tables import markdown_table, write_rows

    detector = load_detector(args.model)
    splits = {}
    for name, data, images in (("fit", args.fit_data, args.fit_images), ("test", args.data, args.images)):
        with tqdm(total=100, desc=name) as bar:
            splits[name] = label_split(
                detector, data, images, max_images=args.max_images,
                crops=ViCropConfig() if args.crops else None,
                on_progress=lambda f, bar=bar: bar.update(round(100 * f) - bar.n),
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
