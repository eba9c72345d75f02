"""Forward hooks registered through `ForwardHooks` are removed when the block ends, also on errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sodviz.hooks import ForwardHooks, StopForward


def _count(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


def test_hooks_see_the_forward_and_go_away():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    seen = {}
    with ForwardHooks() as hooks:
        hooks.add(model[0], lambda module, args, output: seen.setdefault("first", output))
        hooks.add_pre(model[2], lambda module, args: seen.setdefault("last_input", args[0]))
        assert len(hooks) == 2 and _count(model) == 2
        out = model(torch.ones(1, 3))
    assert _count(model) == 0 and out.shape == (1, 2)
    torch.testing.assert_close(seen["last_input"], seen["first"].relu())


def test_hooks_go_away_when_the_forward_raises():
    model = nn.Sequential(nn.Linear(3, 4))

    def explode(module, args):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), ForwardHooks() as hooks:
        hooks.add_pre(model[0], explode)
        model(torch.ones(1, 3))
    assert _count(model) == 0


def test_stop_forward_ends_the_pass_early():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    after = []

    def stop(module, args):
        raise StopForward

    with ForwardHooks() as hooks:
        hooks.add_pre(model[1], stop)
        hooks.add(model[1], lambda module, args, output: after.append(output))
        assert hooks.run(lambda: model(torch.ones(1, 3))) is None
    assert after == [] and _count(model) == 0
