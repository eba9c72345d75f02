"""`python -m sodviz analyze`: a whole dataset into the store the Dataset page reads."""

from __future__ import annotations

import argparse

from sodviz.cli.loading import load_model
from sodviz.cli.values import parse_budgets


def analyze(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from sodviz.analysis.job import plan_job, run_job
    from sodviz.analysis.queries import Analysis
    from sodviz.analysis.settings import AnalysisSettings
    from sodviz.analysis.store import DEFAULT_STORE

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip() and m.strip() != "base")
    budgets = tuple(b for b in parse_budgets(args.budgets) if b > 1)
    if methods and not budgets:
        raise ValueError(
            f"--budgets {args.budgets}: a refinement needs at least 2 forward passes (the full image and a "
            "crop); budget 1 is the full image alone, which every run analyses"
        )
    settings = AnalysisSettings(
        score_threshold=args.threshold, input_size=args.input_size, methods=methods,
        budgets=budgets or (3,), gate_min_uncertain=args.gate_min_uncertain,
    )  # fmt: skip
    store = args.store or DEFAULT_STORE
    detector = load_model(args, annotations=args.data)
    plan = plan_job(detector, args.data, args.images, settings, store=store, model_source=args.model)
    print(f"run {plan.run.run}: {len(plan.tasks)} images, {len(plan.todo)} to analyse ({plan.run.root})")
    with tqdm(total=len(plan.tasks), initial=len(plan.tasks) - len(plan.todo), desc="analyze") as bar:
        summary = run_job(
            plan, detector, engine=args.engine, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
            batch_images=args.batch_images, on_progress=lambda done, _: bar.update(done - bar.n),
        )  # fmt: skip
    print(summary.text())
    for name, reason in sorted(summary.skipped.items()):
        print(f"  skipped {name}: {reason}")
    analysis = Analysis(store, [plan.run.run])
    for method in analysis.methods(plan.run.run):
        print(f"\n{method}")
        table = analysis.bucket_summary(plan.run.run, method)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
