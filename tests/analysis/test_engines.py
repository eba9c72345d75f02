"""The same job on a real local Ray (this machine's 2 CPUs) and killed mid-way in a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sodviz.analysis.job import plan_job, run_job
from sodviz.analysis.store import RunStore
from sodviz.synth.datasets import write_dataset
from sodviz.synth.scenes import SceneConfig
from tests.analysis.test_job import SETTINGS, assert_same_rows, tables

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(
        tmp_path_factory.mktemp("synth"), "test", 4, config=SceneConfig(min_side=256, max_side=320)
    )


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()


def test_ray_writes_the_same_rows_as_the_local_engine(demo_detector, dataset, tmp_path, local_ray):
    plans = {}
    for engine in ("local", "ray"):
        plans[engine] = plan_job(
            demo_detector, dataset / "annotations.json", dataset / "images", SETTINGS,
            store=tmp_path / engine, model_source="demo",
        )  # fmt: skip
        summary = run_job(
            plans[engine], demo_detector if engine == "local" else None, engine=engine, workers=2
        )
        assert summary.analysed == 4
    assert plans["local"].run.run == plans["ray"].run.run
    assert_same_rows(
        tables(tmp_path / "local", plans["local"].run.run), tables(tmp_path / "ray", plans["ray"].run.run)
    )


def test_a_killed_job_resumes_where_it_stopped(demo_detector, dataset, tmp_path):
    store = tmp_path / "store"
    command = [sys.executable, "-m", "sodviz", "analyze", "--data", str(dataset / "annotations.json"),
               "--images", str(dataset / "images"), "--methods", "vicrop,slicing", "--budgets", "3",
               "--store", str(store), "--batch-images", "1"]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if any(len(RunStore(store, run.name).batches()) >= 1 for run in (store / "runs").glob("*")):
            break
        time.sleep(0.05)
    assert process.poll() is None, "the job ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    plan = plan_job(demo_detector, dataset / "annotations.json", dataset / "images", SETTINGS, store=store,
                    model_source="demo")  # fmt: skip
    assert 1 <= len(plan.tasks) - len(plan.todo) < 4  # what was written survived, the rest is left to do
    before = len(plan.todo)
    summary = run_job(plan, demo_detector, batch_images=1)
    assert summary.analysed == before and summary.reused == 4 - before
    whole = plan_job(demo_detector, dataset / "annotations.json", dataset / "images", SETTINGS,
                     store=tmp_path / "whole", model_source="demo")  # fmt: skip
    run_job(whole, demo_detector)
    assert_same_rows(tables(store, plan.run.run), tables(tmp_path / "whole", plan.run.run))
