"""Forward hooks, registered in one place: `ForwardHooks` removes every hook it added when its
block ends (also on an exception), as pytorch-grad-cam's `ActivationsAndGradients` does;
`wire_pre_hook` / `wire_hook` add the permanent hooks through which sodviz's modules join a model."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torch.utils.hooks import RemovableHandle


class StopForward(Exception):
    """Raised by a hook that has seen what it needs; `ForwardHooks.run` swallows it."""


class ForwardHooks:
    """Hooks on a model for the length of a `with` block; every one removed on exit.

    with ForwardHooks() as hooks:
        hooks.add(model.encoder, keep_output)
        model(pixel_values=pixels)
    """

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> ForwardHooks:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __len__(self) -> int:
        return len(self._handles)

    def add(self, module: nn.Module, hook: Callable, *, with_kwargs: bool = False) -> RemovableHandle:
        """A forward hook `hook(module, args, output)` (`(module, args, kwargs, output)` with kwargs)."""
        handle = module.register_forward_hook(hook, with_kwargs=with_kwargs)
        self._handles.append(handle)
        return handle

    def add_pre(
        self, module: nn.Module, hook: Callable, *, with_kwargs: bool = False, prepend: bool = False
    ) -> RemovableHandle:
        """A forward pre-hook `hook(module, args)` (`(module, args, kwargs)` with kwargs)."""
        handle = module.register_forward_pre_hook(hook, with_kwargs=with_kwargs, prepend=prepend)
        self._handles.append(handle)
        return handle

    def release(self) -> None:
        """Remove every hook added so far (safe to call twice)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @staticmethod
    def run(forward: Callable[[], object]) -> object | None:
        """`forward()`, or None when a hook stopped it early with `StopForward`."""
        try:
            return forward()
        except StopForward:
            return None


def wire_pre_hook(module: nn.Module, hook: Callable) -> RemovableHandle:
    """A permanent forward pre-hook: part of the model from now on (deep copies keep it; files do not)."""
    return module.register_forward_pre_hook(hook)


def wire_hook(module: nn.Module, hook: Callable) -> RemovableHandle:
    """A permanent forward hook: part of the model from now on."""
    return module.register_forward_hook(hook)
