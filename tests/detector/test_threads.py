"""Torch's thread count: the cores the process may use, or the environment's override."""

from __future__ import annotations

import os

import pytest
import torch

from sodviz.detector.threads import set_torch_threads, torch_threads


def test_threads_follow_the_cores_this_process_may_use_or_the_override():
    assert torch_threads({}) == len(os.sched_getaffinity(0))
    assert torch_threads({"SODVIZ_TORCH_THREADS": "1"}) == 1
    with pytest.raises(ValueError, match="at least 1"):
        torch_threads({"SODVIZ_TORCH_THREADS": "0"})
    before = torch.get_num_threads()
    try:
        assert set_torch_threads({"SODVIZ_TORCH_THREADS": "1"}) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
