"""The shared hook helper: record activations (and their gradients) at named sites.

Hooks are always removed in ``finally``. Used by profiles (GradNAPs), the activation regularizer,
and optimal inputs.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import torch
from torch import nn

__all__ = ["Recording", "record"]


@dataclass
class Recording:
    """``acts[name]``: ``(batch, channels, frames)``; ``grads[name]``: d(score)/d(acts) after backward."""

    acts: dict[str, torch.Tensor] = field(default_factory=dict)
    grads: dict[str, torch.Tensor] = field(default_factory=dict)


@contextmanager
def record(model: nn.Module, names: Iterable[str], *, grads: bool = False,
           detach: bool = True) -> Iterator[Recording]:
    """Record the outputs of ``model.site(name)`` for each name during the forward passes inside.

    ``grads=True`` also records the gradient w.r.t. each activation when ``backward`` runs.
    ``detach=False`` keeps the graph (for optimising an input through the activation).
    """
    rec = Recording()
    handles = []

    def make(name: str):
        def fwd(_mod, _inp, out):
            rec.acts[name] = out.detach() if detach else out
            if grads and out.requires_grad:
                out.register_hook(lambda g: rec.grads.__setitem__(name, g.detach()))
        return fwd

    try:
        for n in names:
            handles.append(model.site(n).register_forward_hook(make(n)))
        yield rec
    finally:
        for h in handles:
            h.remove()
