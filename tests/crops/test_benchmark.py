"""The benchmark: rows per method and budget, measured passes, tables and the figure written."""

from __future__ import annotations

import csv

import pytest

from sodviz.cli import main, parse_budgets
from sodviz.crops.budget_report import budget_figure, compute_figure, read_table, write_figure, write_tables
from sodviz.crops.budget_study import run_benchmark
from sodviz.synth.datasets import write_dataset
from sodviz.synth.scenes import SceneConfig


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return write_dataset(
        tmp_path_factory.mktemp("bench"), "test", 2, config=SceneConfig(min_side=256, max_side=256)
    )


def test_rows_per_method_and_budget(tiny_detectors, scenes):
    rows = run_benchmark(
        tiny_detectors["rt_detr"],
        scenes / "annotations.json",
        scenes / "images",
        methods=("base", "vicrop", "vicrop_gated", "slicing"),
        budgets=(1, 2, 3),
    )
    expected = [("base", 1)] + [(m, b) for m in ("vicrop", "vicrop_gated", "slicing") for b in (2, 3)]
    assert [(r["method"], r["budget"]) for r in rows] == expected
    passes = {(r["method"], r["budget"]): r["forward_passes"] for r in rows}
    assert (
        passes[("base", 1)] == 1 and passes[("slicing", 3)] == 1
    )  # square scenes: no 2-slice grid is near-square
    assert 1 <= passes[("vicrop", 3)] <= 3  # fewer when fewer windows have any score
    assert rows[0]["latency_ratio"] == pytest.approx(1.0)
    assert all(0 < r["latency_ratio"] < float("inf") for r in rows)  # timings themselves are not asserted


def test_unknown_method_is_refused(tiny_detectors, scenes):
    with pytest.raises(ValueError, match="unknown methods"):
        run_benchmark(
            tiny_detectors["detr"], scenes / "annotations.json", scenes / "images", methods=("magic",)
        )


def test_tables_and_figure(tmp_path):
    rows = [
        {
            "method": "base",
            "budget": 1,
            "AP50": 0.5,
            "forward_passes": 1.0,
            "latency_ratio": 1.0,
            "gflops": 2.0,
            "gflops_ratio": 1.0,
        },
        {
            "method": "slicing",
            "budget": 3,
            "AP50": 0.6,
            "forward_passes": 3.0,
            "latency_ratio": 2.5,
            "gflops": 6.0,
            "gflops_ratio": 3.0,
        },
    ]
    rows = [
        {c: 0.1 for c in ("AP", "AP_S", "AP_M", "AP_L", "AP_vt", "AP_t", "AP_s", "AP_m")}
        | {"unspent": "", "merge": "", "duplicates": 0.0, "splits": 0.0}
        | r
        for r in rows
    ]
    csv_path, markdown = write_tables(rows, tmp_path)
    assert [r["method"] for r in csv.DictReader(csv_path.read_text().splitlines())] == ["base", "slicing"]
    assert markdown.read_text().count("\n") == 4
    back = read_table(csv_path)
    assert [(r["method"], r["budget"], r["AP50"], r["merge"]) for r in back] == [
        ("base", 1, 0.5, ""), ("slicing", 3, 0.6, "")
    ]  # fmt: skip
    figure = budget_figure(rows)
    assert [t.name for t in figure.data] == ["base", "slicing"]
    assert list(figure.data[1].x) == [1.0, 3.0]  # the slicing line starts from the base point
    written = write_figure(rows, tmp_path)
    assert (tmp_path / "benchmark.html").stat().st_size > 1000 and written[0].name == "benchmark.html"
    assert (tmp_path / "benchmark_gflops.html").is_file()
    compute = compute_figure(rows)
    panels = ["x", "x2", "x3", "x4"]  # AP50, AP_vt, AP_t, AP_s
    assert [(t.name, t.xaxis) for t in compute.data] == [("base", p) for p in panels] + [
        ("slicing", p) for p in panels
    ]
    assert list(compute.data[4].x) == [1.0, 3.0] and list(compute.data[5].y) == [0.1, 0.1]  # AP_vt
    merged = [r | {"merge": "" if r["method"] == "base" else "nms/iou"} for r in rows]
    merged.append(merged[1] | {"merge": "wbf/iou", "AP50": 0.7})
    lines = {t.name: list(t.y) for t in budget_figure(merged).data}
    assert lines == {"base": [0.5], "slicing nms/iou": [0.5, 0.6], "slicing wbf/iou": [0.5, 0.7]}


def test_budget_parsing_and_the_cli(tiny_model_dirs, scenes, tmp_path):
    assert parse_budgets("1-4") == (1, 2, 3, 4) and parse_budgets("1,3") == (1, 3)
    assert parse_budgets("1-3,10") == (1, 2, 3, 10)
    argv = ["benchmark", "--data", str(scenes / "annotations.json"), "--images", str(scenes / "images")]
    argv += ["--model", str(tiny_model_dirs["d_fine"]), "--budgets", "1-2", "--out", str(tmp_path)]
    argv += ["--k-scales", "0.3,0.6", "--max-overlap", "0", "--merge", "greedynmm", "--no-low-score-switch"]
    assert main(argv) == 0
    assert (tmp_path / "benchmark.csv").is_file() and (tmp_path / "benchmark.md").is_file()


def test_the_table_says_why_a_budget_was_not_spent(tiny_detectors, scenes):
    rows = run_benchmark(
        tiny_detectors["rt_detr"], scenes / "annotations.json", scenes / "images", methods=("slicing",),
        budgets=(3, 5),
    )  # fmt: skip
    unspent = {r["budget"]: r["unspent"] for r in rows}
    assert unspent[3] == "2/2: the largest near-square grid within the budget has 1 slice"  # square scenes
    assert unspent[5] == ""  # 2x2 + the full image: spent


def test_what_a_budget_buys_in_passes_and_in_gflops():
    from sodviz.crops.budget import PassCosts, crops_within_budget

    costs = PassCosts(full=1.0, crop=0.25, canvas=1.0)
    assert crops_within_budget(3, "passes", None) == 2 and crops_within_budget(3, "passes", None, pack=4) == 8
    assert crops_within_budget(2, "gflops", costs) == 4  # a quarter-cost crop: four for one full pass
    assert crops_within_budget(3, "gflops", costs, pack=4) == 8  # two canvases of four
    assert crops_within_budget(1, "gflops", costs) == 0
    assert crops_within_budget(2, "gflops", PassCosts(full=1.0, crop=0.3, canvas=1.0)) == 3
    with pytest.raises(ValueError, match="pass costs"):
        crops_within_budget(2, "gflops", None)


@pytest.mark.parametrize(
    "method, pack", [("vicrop", 0), ("vicrop", 4), ("slicing", 0)], ids=["vicrop", "vicrop-packed", "slicing"]
)
@pytest.mark.parametrize("budget", [2, 3])
def test_each_method_spends_its_gflops_budget_and_no_more(tiny_detectors, method, pack, budget):
    """At crop_size 64 a crop costs under half of the 96 px full image: the counted GFLOPs of
    the passes a method ran stay within the budget, and leave less than one more crop unspent."""
    from dataclasses import replace

    from sodviz.crops.budget import detect_at_budget, pass_costs
    from sodviz.crops.vicrop import ViCropConfig
    from sodviz.detector.flops import results_gflops
    from sodviz.detector.inference import run_inference
    from sodviz.synth.scenes import generate_scene

    detector = tiny_detectors["rt_detr"]
    image = generate_scene(3, SceneConfig(min_side=384, max_side=384))[0]
    config = replace(ViCropConfig(scales=(0.25,), fill=True, max_overlap=1.0), crop_size=64, pack=pack)
    costs = pass_costs(detector, image, run_inference(detector, image, cache=None), config)
    assert costs.crop < 0.5 * costs.full and costs.canvas == costs.full
    run = detect_at_budget(detector, image, method, budget, config, unit="gflops", costs=costs)
    spent = results_gflops(detector, run.results)
    assert spent <= budget * costs.full * (1 + 1e-9)
    if not run.shortfall:
        step = costs.canvas if pack else costs.crop
        assert spent > budget * costs.full - step
    if pack:
        assert run.passes == budget  # one canvas per full pass's worth
    elif not run.shortfall:
        assert run.passes > budget  # cheaper crops: more passes than the budget's multiple


def test_the_benchmark_in_gflops(tiny_detectors, scenes):
    from dataclasses import replace

    from sodviz.crops.vicrop import ViCropConfig

    config = replace(ViCropConfig(), crop_size=64)
    rows = run_benchmark(
        tiny_detectors["rt_detr"], scenes / "annotations.json", scenes / "images",
        methods=("vicrop", "slicing"), budgets=(1, 2, 3), unit="gflops", vicrop=config,
    )  # fmt: skip
    by = {(r["method"], r["budget"]): r for r in rows}
    assert by[("base", 1)]["gflops_ratio"] == pytest.approx(1.0) and by[("base", 1)]["gflops"] > 0
    for (method, budget), row in by.items():
        assert row["gflops_ratio"] <= budget + 1e-9, (method, budget)
    assert by[("vicrop", 3)]["forward_passes"] > 3  # cheaper crops: more of them than passes


def test_the_cli_in_gflops_with_packing_and_baselines(tiny_model_dirs, scenes, tmp_path, capsys):
    argv = ["benchmark", "--data", str(scenes / "annotations.json"), "--images", str(scenes / "images")]
    argv += ["--model", str(tiny_model_dirs["rt_detr"]), "--budgets", "1-3", "--out", str(tmp_path)]
    argv += ["--budget-unit", "gflops", "--crop-size", "64", "--pack", "2", "--coco-backend", "faster"]
    argv += ["--methods", "base,vicrop,slicing_only,random,density,oracle"]
    assert main(argv) == 0
    rows = list(csv.DictReader((tmp_path / "benchmark.csv").read_text().splitlines()))
    methods = {row["method"] for row in rows}
    assert methods == {"base", "vicrop", "slicing_only", "random", "density", "oracle"}
    assert all(float(row["gflops_ratio"]) <= int(row["budget"]) + 1e-9 for row in rows)
    packed = [r for r in rows if r["method"] in ("vicrop", "random", "oracle") and r["budget"] == "3"]
    assert all(float(r["forward_passes"]) <= 3 for r in packed)  # two canvases of two crops each


def test_a_crop_size_off_the_stride_is_a_sentence(tiny_model_dirs, scenes, tmp_path, capsys):
    argv = ["benchmark", "--data", str(scenes / "annotations.json"), "--images", str(scenes / "images")]
    argv += ["--model", str(tiny_model_dirs["rt_detr"]), "--crop-size", "48", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "multiple of 32" in err and "Traceback" not in err


def test_asahi_runs_its_grid_only_where_the_budget_affords_it(tiny_detectors):
    from sodviz.crops.budget import detect_at_budget
    from sodviz.crops.vicrop import ViCropConfig
    from sodviz.synth.scenes import generate_scene

    image = generate_scene(3, SceneConfig(min_side=256, max_side=256))[0]
    config = ViCropConfig()
    short = detect_at_budget(tiny_detectors["rt_detr"], image, "asahi", 5, config)
    assert short.passes == 1 and short.shortfall == "ASAHI's 6 slices cost more than the budget"
    full = detect_at_budget(tiny_detectors["rt_detr"], image, "asahi", 8, config)
    assert full.passes == 7 and full.shortfall == "ASAHI runs 6 slices, whatever the budget"
    assert detect_at_budget(tiny_detectors["rt_detr"], image, "asahi", 7, config).shortfall == ""


def test_other_merges_refuse_the_same_passes(demo_detector, scenes):
    """A merge compared with `merges` gives the rows its own run gives, at the same cost."""
    from dataclasses import replace

    from sodviz.crops.fusion import Fusion
    from sodviz.crops.vicrop import ViCropConfig

    config = ViCropConfig(fusion=Fusion(low_score_nms=False))
    kwargs = dict(methods=("vicrop", "slicing_only"), budgets=(5,), coco_backend="pycocotools")
    detector, data, images = demo_detector, scenes / "annotations.json", scenes / "images"
    rows = run_benchmark(detector, data, images, vicrop=config, merges=("nms", "wbf", "greedynmm"), **kwargs)
    alone = run_benchmark(
        detector, data, images, vicrop=replace(config, fusion=replace(config.fusion, merge="wbf")), **kwargs
    )
    assert [(r["method"], r["merge"]) for r in rows] == [("base", "")] + [
        (m, merge) for m in ("vicrop", "slicing_only") for merge in ("nms/iou", "wbf/iou", "greedynmm/iou")
    ]
    by = {(r["method"], r["merge"]): r for r in rows}
    for row in alone[1:]:
        compared = by[(row["method"], "wbf/iou")]
        for column in ("AP", "AP50", "AP_vt", "duplicates", "splits", "forward_passes", "gflops"):
            assert compared[column] == pytest.approx(row[column], nan_ok=True), (row["method"], column)
        primary = by[(row["method"], "nms/iou")]
        assert (
            compared["gflops"] == primary["gflops"] and compared["latency_ratio"] >= primary["latency_ratio"]
        )
    switched = run_benchmark(detector, data, images, merges=("wbf",), **kwargs)
    assert {r["merge"] for r in switched} == {"", "nms/iou", "wbf as nms/iou"}  # SAHI's switch below 0.1


def test_the_cli_compares_merges_and_refuses_unknown_ones(tiny_model_dirs, scenes, tmp_path, capsys):
    argv = ["benchmark", "--data", str(scenes / "annotations.json"), "--images", str(scenes / "images")]
    argv += ["--model", str(tiny_model_dirs["rt_detr"]), "--budgets", "1,3", "--out", str(tmp_path)]
    argv += ["--methods", "base,slicing_only,asahi", "--merges", "nms,wbf", "--no-low-score-switch"]
    assert main(argv) == 0
    rows = list(csv.DictReader((tmp_path / "benchmark.csv").read_text().splitlines()))
    assert {(r["method"], r["merge"]) for r in rows} >= {("slicing_only", "wbf/iou"), ("asahi", "nms/iou")}
    assert all(float(r["duplicates"]) >= 0 and float(r["splits"]) >= 0 for r in rows)
    assert main([*argv[:-3], "--merges", "nms,soft"]) == 2
    err = capsys.readouterr().err
    assert "unknown merges ['soft']" in err and "Traceback" not in err
