"""The hook helper (toposcope.hooks.record): activations and gradients by site name, hooks always removed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from toposcope.hooks import record
from toposcope.model import HookPoint


class TwoSites(nn.Module):
    """y = 3 * relu(x) at site "a", z = y ** 2 at site "b"; score = z.sum()."""

    def __init__(self):
        super().__init__()
        self.a, self.b = HookPoint(), HookPoint()

    def site(self, name):
        return {"a": self.a, "b": self.b}[name]

    def forward(self, x):
        y = self.a(3.0 * torch.relu(x))
        return self.b(y ** 2)


def _n_hooks(m: nn.Module) -> int:
    return sum(len(mod._forward_hooks) for mod in m.modules())


def test_records_activations_and_gradients_by_name():
    m = TwoSites()
    x = torch.tensor([[-1.0, 0.5, 2.0]], requires_grad=True)
    with record(m, ["a", "b"], grads=True) as rec:
        assert _n_hooks(m) == 2
        z = m(x)
        z.sum().backward()
    y = torch.tensor([[0.0, 1.5, 6.0]])
    assert torch.equal(rec.acts["a"], y) and torch.equal(rec.acts["b"], y ** 2)
    assert not rec.acts["a"].requires_grad  # detached by default
    assert torch.equal(rec.grads["a"], 2 * y)  # d(sum y^2)/dy
    assert torch.equal(rec.grads["b"], torch.ones(1, 3))
    assert _n_hooks(m) == 0


def test_detach_false_keeps_the_graph_and_no_grads_without_asking():
    m = TwoSites()
    x = torch.tensor([[1.0, 2.0]], requires_grad=True)
    with record(m, ["a"], detach=False) as rec:
        m(x)
    assert rec.acts["a"].requires_grad and rec.grads == {}
    (g,) = torch.autograd.grad(rec.acts["a"].sum(), x)
    assert torch.equal(g, torch.full((1, 2), 3.0))


def test_hooks_removed_after_an_exception():
    m = TwoSites()
    with pytest.raises(RuntimeError, match="boom"):
        with record(m, ["a", "b"]):
            m(torch.ones(1, 2))
            raise RuntimeError("boom")
    assert _n_hooks(m) == 0
    # a bad site name part-way: the hooks already placed are removed too
    with pytest.raises(KeyError):
        with record(m, ["a", "nope"]):
            pass
    assert _n_hooks(m) == 0
    # and recording afterwards works as before
    with record(m, ["b"]) as rec:
        m(torch.ones(1, 1))
    assert rec.acts["b"].item() == 9.0
