"""The detector a command runs: `--model`, and for open-vocabulary models `--prompt`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def load_model(args: argparse.Namespace, source: str | None = None, *, annotations: Path | None = None):
    """Load `--model` (or `source`) with `--prompt`. With a dataset's `annotations`, an
    open-vocabulary model asks for the prompt's phrases named as the dataset's categories, or,
    without a prompt, for the categories themselves; the prompt used is printed on stderr."""
    from sodviz.detector.loading import load_detector
    from sodviz.detector.prompt import prompt_for_data
    from sodviz.evaluation.coco import category_names

    prompt = getattr(args, "prompt", None)
    source = args.model if source is None else source
    allow_pickle = getattr(args, "allow_pickle", False)
    if annotations is None:
        detector = load_detector(source, allow_pickle=allow_pickle, prompt=prompt)
    else:
        detector = load_detector(source, allow_pickle=allow_pickle)
        detector = prompt_for_data(detector, prompt, category_names(annotations))
    if detector.prompt is not None:
        mapped = ", ".join(
            f"{phrase!r}" + (f" -> {name!r}" if name != phrase else "")
            for phrase, name in zip(detector.prompt.phrases, detector.class_names, strict=True)
        )
        print(f"prompt {detector.prompt.text!r}: classes {mapped}", file=sys.stderr)
    return detector
