"""Benchmark the inference core on the default RT-DETR config (random weights) at 640 px.

Prints: capture overhead against a plain eager forward, cache-hit time, one query's map, the
aggregate map over all 300 queries. Timings interleave the compared variants in one run and
report medians, because a shared machine is noisy.

With `--families`, instead: the capture overhead of every family added after the first seven
(DEIMv2, LW-DETR, RF-DETR, Grounding DINO, MM Grounding DINO) on its default full-size
configuration with random weights, at its image processor's default input, RT-DETR beside them.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_inference.py [--rounds 10] [--families [--only deimv2]]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrImageProcessorPil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sodviz.attention.maps import aggregate_attention_map, query_attention_entropy, query_attention_map
from sodviz.cache import InferenceCache
from sodviz.detector.inference import forward_with_capture, run_inference
from sodviz.detector.loading import load_detector
from sodviz.detector.preprocess import prepare_inputs
from sodviz.imageio import load_image

SHARED_IMAGE = Path(__file__).resolve().parents[2] / "shared/data/visdrone_val_2img/images"


def median_ms(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def test_image() -> tuple[np.ndarray, str]:
    photos = sorted(SHARED_IMAGE.glob("*")) if SHARED_IMAGE.is_dir() else []
    if photos:
        return load_image(photos[0]), f"{photos[0].name} (real 1920x1080 photo)"
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(1080, 1920, 3), dtype=np.uint8), "random 1920x1080 image"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="interleaved forward rounds (default 10)")
    parser.add_argument("--families", action="store_true", help="capture overhead of each new family")
    parser.add_argument("--only", default="", help="with --families: these model types only")
    args = parser.parse_args()
    if args.families:
        family_overheads(args.rounds, [t for t in args.only.split(",") if t])
        return

    torch.manual_seed(0)
    folder = Path(tempfile.mkdtemp(prefix="sodviz-bench-"))
    RTDetrForObjectDetection(RTDetrConfig()).save_pretrained(folder)
    RTDetrImageProcessorPil().save_pretrained(folder)  # 640x640, the RT-DETR default
    detector = load_detector(folder)
    image, image_name = test_image()
    config = detector.model.config
    parameters = sum(p.numel() for p in detector.model.parameters()) / 1e6
    print(
        f"model: default RTDetrConfig, {parameters:.1f} M parameters, {config.num_queries} queries, "
        f"{config.decoder_layers} decoder layers, input {detector.input_size} px; torch threads "
        f"{torch.get_num_threads()}; image: {image_name}"
    )

    inputs, _ = prepare_inputs(detector, [image])

    def plain() -> None:
        with torch.inference_mode():
            detector.model(**inputs)

    def captured() -> None:
        forward_with_capture(detector, inputs)

    plain(), captured()  # warm-up
    plain_times, capture_times = [], []
    for _ in range(args.rounds):
        plain_times.append(median_ms(plain, 1))
        capture_times.append(median_ms(captured, 1))
    plain_ms, capture_ms = statistics.median(plain_times), statistics.median(capture_times)
    full_ms = median_ms(lambda: run_inference(detector, image, cache=None), 3)
    preprocess_ms = median_ms(lambda: prepare_inputs(detector, [image]), 5)

    cache = InferenceCache()
    result = run_inference(detector, image, cache=cache)
    hit_ms = median_ms(lambda: run_inference(detector, image, cache=cache), 50)
    queries = np.argsort(-result.scores)[:20]
    map_ms = statistics.median(median_ms(lambda q=q: query_attention_map(result, int(q)), 5) for q in queries)
    map_mean_ms = statistics.median(
        median_ms(lambda q=q: query_attention_map(result, int(q), layer=None), 5) for q in queries
    )
    aggregate_ms = median_ms(lambda: aggregate_attention_map(result), 20)
    aggregate_mean_ms = median_ms(lambda: aggregate_attention_map(result, layer=None), 10)
    entropy_ms = median_ms(lambda: query_attention_entropy(result), 10)

    ratio = capture_ms / plain_ms
    rows = [
        ("plain eager forward (ms)", f"{plain_ms:.0f}", ""),
        ("forward with capture hooks (ms)", f"{capture_ms:.0f}", ""),
        ("capture overhead (ratio)", f"{ratio:.3f}", _verdict(ratio <= 1.10, "<= 1.10x")),
        ("preprocess 1920x1080 -> 640 (ms)", f"{preprocess_ms:.0f}", ""),
        ("run_inference, no cache (ms)", f"{full_ms:.0f}", ""),
        ("cache hit, incl. image hash (ms)", f"{hit_ms:.2f}", _verdict(hit_ms <= 5, "<= 5 ms")),
        ("one query's map, last layer (ms)", f"{map_ms:.2f}", _verdict(map_ms <= 20, "<= 20 ms")),
        (
            "one query's map, mean of layers (ms)",
            f"{map_mean_ms:.2f}",
            _verdict(map_mean_ms <= 20, "<= 20 ms"),
        ),
        (
            f"aggregate map, {result.num_queries} queries (ms)",
            f"{aggregate_ms:.2f}",
            _verdict(aggregate_ms <= 100, "<= 100 ms"),
        ),
        (
            "aggregate map, mean of layers (ms)",
            f"{aggregate_mean_ms:.2f}",
            _verdict(aggregate_mean_ms <= 100, "<= 100 ms"),
        ),
        (f"entropy of all {result.num_queries} queries (ms)", f"{entropy_ms:.2f}", ""),
        ("result size in cache (MB)", f"{result.nbytes / 2**20:.2f}", ""),
    ]
    width = max(len(row[0]) for row in rows)
    print(f"\n{'measure':<{width}}  {'value':>8}  target")
    for name, value, verdict in rows:
        print(f"{name:<{width}}  {value:>8}  {verdict}")


# Default configs, as transformers builds them with no arguments. LW-DETR's default has no projector
# scale (no feature level at all), so it gets the one level of the LW-DETR small checkpoint's layout.
FAMILY_CONFIGS = {
    "rt_detr": ("RTDetrConfig", {}),
    "deimv2": ("Deimv2Config", {}),
    "lw_detr": ("LwDetrConfig", {"projector_scale_factors": [1.0]}),
    "rf_detr": ("RfDetrConfig", {}),
    "grounding-dino": ("GroundingDinoConfig", {}),
    "mm-grounding-dino": ("MMGroundingDinoConfig", {}),
}
PROMPT_VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    ".",
    "car",
    "person",
    "bicycle",
    "truck",
    "bus",
    "boat",
]


def family_overheads(rounds: int, only: list[str] | None = None) -> None:
    """Plain eager forward against the forward with sodviz's capture, per family, interleaved."""
    import transformers
    from transformers import AutoModelForObjectDetection, AutoModelForZeroShotObjectDetection, BertTokenizer

    from sodviz.detector.families import FAMILIES

    image, image_name = test_image()
    print(
        f"image: {image_name}; torch threads {torch.get_num_threads()}; {rounds} interleaved rounds, medians"
    )
    rows = []
    for model_type, (config_name, overrides) in FAMILY_CONFIGS.items():
        if only and model_type not in only:
            continue
        family = FAMILIES[model_type]
        torch.manual_seed(0)
        config = getattr(transformers, config_name)(**overrides)
        auto = AutoModelForZeroShotObjectDetection if family.open_vocabulary else AutoModelForObjectDetection
        folder = Path(tempfile.mkdtemp(prefix=f"sodviz-bench-{model_type}-"))
        auto.from_config(config).save_pretrained(folder)
        getattr(transformers, family.processor_class)().save_pretrained(folder)
        if family.open_vocabulary:
            BertTokenizer(vocab={w: i for i, w in enumerate(PROMPT_VOCAB)}).save_pretrained(folder)
        detector = load_detector(folder)
        inputs, _ = prepare_inputs(detector, [image])

        def plain(detector=detector, inputs=inputs) -> None:
            with torch.inference_mode():
                detector.model(**inputs)

        def captured(detector=detector, inputs=inputs) -> None:
            forward_with_capture(detector, inputs)

        plain(), captured()  # warm-up
        plain_times, capture_times = [], []
        for round_ in range(rounds):  # A B, B A, ...: the second of a pair ran faster here
            if round_ % 2:
                capture_times.append(median_ms(captured, 1))
                plain_times.append(median_ms(plain, 1))
            else:
                plain_times.append(median_ms(plain, 1))
                capture_times.append(median_ms(captured, 1))
        plain_ms, capture_ms = statistics.median(plain_times), statistics.median(capture_times)
        ratios = [c / p for c, p in zip(capture_times, plain_times, strict=True)]
        height, width = inputs["pixel_values"].shape[-2:]
        parameters = sum(p.numel() for p in detector.model.parameters()) / 1e6
        rows.append((family.name, f"{parameters:.1f}", f"{width}x{height}", config.num_queries, plain_ms,
                     capture_ms, statistics.median(ratios)))  # fmt: skip
        print(f"  {family.name}: plain {plain_ms:.0f} ms, captured {capture_ms:.0f} ms", flush=True)
    print(f"\n{'family':<18} {'params M':>8} {'input':>10} {'queries':>7} {'plain ms':>9} {'capture ms':>10} "
          f"{'overhead':>8}")  # fmt: skip
    for name, parameters, size, queries, plain_ms, capture_ms, ratio in rows:
        print(f"{name:<18} {parameters:>8} {size:>10} {queries:>7} {plain_ms:>9.0f} {capture_ms:>10.0f} "
              f"{ratio:>7.3f}x")  # fmt: skip


def _verdict(ok: bool, target: str) -> str:
    return f"{target}: {'met' if ok else 'MISSED'}"


if __name__ == "__main__":
    main()
