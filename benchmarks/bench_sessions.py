"""How model work from several sessions should share this machine's cores, measured.

Eight different images (the sample scenes and their mirror images), each one forward pass with
attention capture on the embedded demo detector, done three ways, alternated over `--rounds`:

- serial: one detector, torch using every core, one pass at a time (what the detector's lock
  gives several sessions today);
- batched: the same detector, the eight images as micro-batches of `--batch` (what
  micro-batching across sessions would give);
- replicas: two copies of the detector, torch at one thread each, two passes at once on two
  Python threads (a pool of replicas; twice the weights in memory).

It prints the median seconds per image of each and their ratio to serial. Read the ratios: the
machine is shared.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_sessions.py [--rounds 5] [--batch 2]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sodviz.detector.inference import run_inference, run_inference_batch
from sodviz.detector.loading import load_detector
from sodviz.samples import load_sample, sample_names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    detector = load_detector("demo")
    twin = replace(detector, model=copy.deepcopy(detector.model), lock=threading.Lock())
    scenes = [load_sample(name)[0].image for name in sample_names()]
    images = (scenes + [np.ascontiguousarray(s[:, ::-1]) for s in scenes])[:8]
    images = [np.ascontiguousarray(i[: min(i.shape[:2]), : min(i.shape[:2])]) for i in images]  # one shape

    def serial() -> None:
        torch.set_num_threads(cores)
        for image in images:
            run_inference(detector, image, cache=None)

    def batched() -> None:
        torch.set_num_threads(cores)
        for start in range(0, len(images), args.batch):
            run_inference_batch(detector, images[start : start + args.batch])

    def replicas() -> None:
        torch.set_num_threads(1)
        halves = [(detector, images[0::2]), (twin, images[1::2])]
        threads = [
            threading.Thread(target=lambda d=d, part=part: [run_inference(d, i, cache=None) for i in part])
            for d, part in halves
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    ways = {"serial": serial, f"batched by {args.batch}": batched, "2 replicas x 1 thread": replicas}
    serial()  # warm up
    seconds = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, way in ways.items():
            started = time.perf_counter()
            way()
            seconds[name].append((time.perf_counter() - started) / len(images))
    torch.set_num_threads(cores)
    base = float(np.median(seconds["serial"]))
    print(f"{cores} cores; {len(images)} images of {images[0].shape[1]}x{images[0].shape[0]}; "
          f"median of {args.rounds} alternated rounds")  # fmt: skip
    for name, values in seconds.items():
        median = float(np.median(values))
        print(f"{name:<24} {median * 1000:7.1f} ms per image  {median / base:5.2f}x serial")


if __name__ == "__main__":
    main()
