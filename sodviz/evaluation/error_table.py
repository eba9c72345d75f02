"""Error analysis of a base detector against a module detector: TP / FP / FN, precision, recall
and F1 per size bucket at IoU 0.5 (FINE Table 5), from `evaluate_detector` reports."""

from __future__ import annotations

from sodviz.evaluation.dataset import DatasetEvaluation

ERROR_COLUMNS = ["model", "bucket", "tp", "fp", "fn", "precision", "recall", "f1"]


def error_rows(name: str, counts: dict[str, dict[str, int]]) -> list[dict]:
    """One row per AI-TOD bucket and an `all` row. Precision, recall and F1 are NaN with no
    detection (precision), no object (recall) or both undefined (F1)."""
    total = {key: sum(c[key] for c in counts.values()) for key in ("tp", "fp", "fn")}
    rows = []
    for bucket, c in [*counts.items(), ("all", total)]:
        tp, fp, fn = c["tp"], c["fp"], c["fn"]
        precision = tp / (tp + fp) if tp + fp else float("nan")
        recall = tp / (tp + fn) if tp + fn else float("nan")
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
        rows.append(dict(model=name, bucket=bucket, tp=tp, fp=fp, fn=fn, precision=precision,
                         recall=recall, f1=f1))  # fmt: skip
    return rows


def compare_errors(reports: dict[str, DatasetEvaluation]) -> list[dict]:
    """Rows for each named report (e.g. {"base": ..., "+all": ...}), then a `change` row per bucket
    (last minus first) so the table reads as base vs module."""
    if not reports:
        raise ValueError("compare_errors needs at least one report")
    thresholds = {report.score_threshold for report in reports.values()}
    if len(thresholds) > 1:
        raise ValueError(f"reports were counted at different score thresholds: {sorted(thresholds)}")
    rows = [row for name, report in reports.items() for row in error_rows(name, report.counts)]
    names = list(reports)
    if len(names) > 1:
        first = {r["bucket"]: r for r in rows if r["model"] == names[0]}
        for row in [r for r in rows if r["model"] == names[-1]]:
            base = first[row["bucket"]]
            rows.append({"model": f"{names[-1]} - {names[0]}", "bucket": row["bucket"]}
                        | {k: row[k] - base[k] for k in ERROR_COLUMNS[2:]})  # fmt: skip
    return rows
