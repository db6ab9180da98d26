"""The optimisation loop for optimal inputs (docs/method.md § Optimal inputs; Yosinski et al. 2015). Returns tensors, shows nothing.

Natural optimal inputs (``natural=True``, the default; ``docs/optimal-inputs.md``): Adam on the
parameter of :class:`~.param.SpectralMelInput` (1/f Fourier coefficients), model frozen, eval mode::

    x     = lo + (hi - lo) * sigmoid(irfft2(scale * z))               # every bin inside its band's range
    x_j   = jitter(x, random offsets in [-jitter, jitter])            # random time jitter
    value = objective(activations(model, x_j), valid frames)           # (B,)
    loss  = -value + l2 * mean(x^2) + tv * total_variation(x)          # per element
    loss.sum().backward(); adam.step()

``[lo, hi]`` is the per-band 0.5 / 99.5 percentile range of real normalised log-mel (``data_range``);
no blur or clipping is needed (the spectrum and the squash do their work). Unconstrained
(``natural=False``, ``--unconstrained``: the earlier behaviour) optimises ``x`` itself::

    x_j   = jitter(x, random offsets in [-jitter, jitter])          # random time jitter
    value = objective(activations(model, x_j), valid frames)         # (B,)
    loss  = -value + l2 * mean(x^2) + tv * total_variation(x)         # per element; L2 decay
    loss.sum().backward(); adam.step()
    every blur_every steps: x <- gaussian_blur(x)                     # periodic blur
    x <- clip(x, data_lo, data_hi)                                    # clipping to the data range (min/max)

Batch elements never interact (Adam is per coordinate, the loss is a sum of per-element terms), so a
region's 9 single-filter inputs and its joint input are one batch of 10 with one forward/backward
per step. The forward stops at the deepest layer the objective reads. The final ``values`` are the
objective of the returned inputs *without* jitter. Deterministic for a ``seed`` (initial noise and
jitter come from one seeded generator).

Dead units: a filter whose ReLU is off for the initial noise gets no gradient at all. As in Lucid's
"redirected ReLU" (Olah et al. 2017), for the first ``redirect_steps`` steps every ReLU up to the
target layer passes, for a batch element whose ordinary ReLU gradient is all zero, the gradient
components that would *raise* a negative pre-activation; forward values are unchanged (the
recorded post-ReLU activations are exact), and afterwards plain ReLU gradients are used.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from .._util import progress_enabled
from ..hooks import record
from .objectives import Objective
from .param import MelInput, SpectralMelInput, receptive_field
from .transforms import clip_to_range, gaussian_blur, jitter, l2_penalty, random_offsets, total_variation

__all__ = ["OptimizeConfig", "OptimizeResult", "optimize_inputs", "activations", "frozen", "progress_enabled"]


@dataclass(frozen=True)
class OptimizeConfig:
    """Hyperparameters of the loop (defaults tuned on the ``tiny``/``small`` configs).

    ``natural``: the natural parameterisation (default) or the unconstrained pixel one; ``decay``: the
    1/f^decay spectrum of the natural one; ``tv``: weight of the total-variation penalty (both);
    ``blur_*`` apply to the unconstrained one only."""

    steps: int = 200
    lr: float = 0.05
    l2: float = 0.01  # weight of mean(x^2) (normalised features have per-bin variance ~1 on data)
    blur_every: int = 4
    blur_sigma_mel: float = 0.5
    blur_sigma_time: float = 0.5
    jitter: int = 2  # max |shift| in feature frames
    init_std: float = 0.1
    redirect_steps: int = 20
    seed: int = 0
    natural: bool = True
    decay: float = 2.0  # 1/f^2 spectrum: measured smoother than 1/f, still above the data maximum (docs)
    tv: float = 0.2  # total-variation weight (the unconstrained preset sets 0)
    saturation: float = 0.0  # natural: weight of mean(y^2) before the squash (keeps bins off the range bounds)

    def __post_init__(self) -> None:
        if (self.steps < 0 or self.lr <= 0 or self.l2 < 0 or self.blur_every < 0 or self.jitter < 0
                or self.redirect_steps < 0 or self.init_std < 0 or self.decay < 0 or self.tv < 0
                or self.saturation < 0):
            raise ValueError(f"need steps >= 0, lr > 0 and l2, blur_every, jitter, redirect_steps, init_std, decay, "
                             f"tv >= 0: {self}")

    @classmethod
    def unconstrained(cls, **kw) -> "OptimizeConfig":
        """The earlier pixel-space optimiser (clip to the data's min/max, periodic blur)."""
        return cls(**{"natural": False, "tv": 0.0, **kw})


@dataclass
class OptimizeResult:
    """``inputs``: ``(B, n_mels, T)`` optimised normalised log-mel; ``values``: ``(B,)`` objective reached
    (no jitter); ``losses``/``objective``: ``(steps, B)`` per-step loss and objective (with jitter)."""

    inputs: torch.Tensor
    values: torch.Tensor
    losses: torch.Tensor
    objective: torch.Tensor
    config: OptimizeConfig = field(default_factory=OptimizeConfig)


class _RedirectedReLUFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        plain = g * (x > 0)
        redirected = g * (g < 0)  # g = dLoss/dy < 0: raising y lowers the loss
        dead = (plain.flatten(1) == 0).all(dim=1).view(-1, *([1] * (g.dim() - 1)))
        return torch.where(dead, redirected, plain)


class RedirectedReLU(torch.nn.Module):
    """ReLU forward; backward as described in the module docstring (per batch element)."""

    def forward(self, x):
        return _RedirectedReLUFn.apply(x)


@contextmanager
def redirected_relus(model, upto: str):
    """Temporarily swap ``model.blocks[name].act`` (ReLU) for :class:`RedirectedReLU` up to ``upto`` (and the
    front end's, when the model has one)."""
    front = getattr(model, "frontend", None)
    stages = [] if front is None else [front]  # every module with an ``act`` from the input up to ``upto``
    for name, block in model.blocks.items():
        stages.append(block)
        if name == upto:
            break
    swapped = []
    try:
        for stage in stages:
            if isinstance(stage.act, torch.nn.ReLU):
                swapped.append((stage, stage.act))
                stage.act = RedirectedReLU()
        yield
    finally:
        for block, act in swapped:
            block.act = act


@contextmanager
def frozen(model: torch.nn.Module):
    """Eval mode and ``requires_grad=False`` on every parameter inside; both restored afterwards."""
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        model.eval()
        yield model
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
        model.train(was_training)


def activations(model, feats: torch.Tensor, layers, *, detach: bool = True,
                unpadded: bool = False) -> dict[str, torch.Tensor]:
    """Post-ReLU activations ``{layer: (B, C, T_l)}`` of ``feats (B, n_mels, T)``.

    Runs the model's blocks (``model.blocks``, input to output) only up to the deepest requested
    layer; the activations are read at the named sites through :func:`toposcope.hooks.record`.
    ``unpadded=True`` runs every conv without its zero padding (``F.conv1d(..., padding=0)`` with
    the block's own weights, then its ReLU, hook and dropout): the output holds only frames that see
    no padding, and the intermediate layers skip the frames only padded outputs would need (about
    30 % fewer FLOPs for the deep layers of ``small``). The optimiser checks it against the padded
    forward before using it.
    """
    layers = list(dict.fromkeys(layers))
    order = list(model.blocks)
    for l in layers:
        if l not in order:
            raise KeyError(f"no layer {l!r}; layers: {', '.join(model.layer_names)}")
    last = max(order.index(l) for l in layers)
    with record(model, layers, detach=detach) as rec:
        h = feats
        if getattr(model, "frontend", None) is not None:  # the optional 2-D front end (toposcope.model.Frontend)
            h = model.frontend(h, unpadded=unpadded)
        for name in order[:last + 1]:
            block = model.blocks[name]
            if unpadded:
                c = block.conv
                h = block.activate(
                    torch.nn.functional.conv1d(h, c.weight, c.bias, c.stride, 0, c.dilation, c.groups))
            else:
                h = block(h)
    return dict(rec.acts)


def valid_frames(model, acts: dict[str, torch.Tensor], n_input: int) -> dict[str, slice]:
    """Per layer: output frames whose receptive field lies inside the input (see :mod:`.param`)."""
    out = {}
    for l, a in acts.items():
        v = receptive_field(model, l).valid_frames(n_input, a.shape[-1])
        if v.stop <= v.start:
            raise ValueError(f"an input of {n_input} frames is shorter than the receptive field of {l} "
                             f"({receptive_field(model, l).size} frames)")
        out[l] = v
    return out


def optimize_inputs(model, objective: Objective, *, batch: int, frames: int,
                    config: OptimizeConfig = OptimizeConfig(), data_range=None, init=None, scale=None,
                    progress: bool = False, desc: str = "optimize") -> OptimizeResult:
    """Maximise ``objective`` over inputs ``(batch, n_mels, frames)`` (see module docstring).

    ``objective`` returns ``(batch,)`` values (e.g. a :class:`~.objectives.PerSample` of ``batch``
    targets, or any objective, then every element optimises the same one from different noise).
    ``data_range``: ``(lo, hi)`` per-bin tensors ``(n_mels,)``: the natural range (required with
    ``config.natural``) or the clip range (``None``: no clipping).
    ``init``: ``(batch, n_mels, frames)`` starting point (default: seeded noise).
    ``scale``: ``(batch,)`` positive objective scales; the loss uses ``value / scale`` so the regularisers
    weigh the same against a weak filter as against a strong one (the run passes each target's data
    maximum); the reported values are unscaled.
    """
    from tqdm.auto import tqdm

    cfg = config
    n_mels = model.cfg.features.n_mels
    g = torch.Generator().manual_seed(int(cfg.seed))
    lo = hi = None
    if data_range is not None:
        lo, hi = (torch.as_tensor(r, dtype=torch.float32).reshape(-1) for r in data_range)
        if lo.numel() != n_mels or hi.numel() != n_mels or bool((lo > hi).any()):
            raise ValueError(f"data_range must be per-bin (lo, hi) with {n_mels} bins and lo <= hi")
    if cfg.natural:
        if lo is None:
            raise ValueError("natural optimal inputs need data_range (the per-band natural range of real log-mel); "
                             "pass it, or use OptimizeConfig(natural=False) for the unconstrained optimum")
        param = SpectralMelInput(batch, n_mels, frames, lo, hi, decay=cfg.decay, init_std=cfg.init_std, generator=g,
                                 init=init)
        opt = torch.optim.Adam([param.z], lr=cfg.lr)
    else:
        param = MelInput(batch, n_mels, frames, init_std=cfg.init_std, generator=g, init=init)
        if lo is not None:
            clip_to_range(param.x.data, lo, hi)
        opt = torch.optim.Adam([param.x], lr=cfg.lr)
    x = param().detach() if cfg.natural else param.x
    sc = None
    if scale is not None:
        sc = torch.as_tensor(scale, dtype=torch.float32).reshape(-1)
        if sc.numel() != batch or not bool((sc > 0).all()) or not bool(torch.isfinite(sc).all()):
            raise ValueError(f"scale must hold {batch} positive finite numbers, got {scale}")
    losses = torch.zeros(cfg.steps, batch)
    values = torch.zeros(cfg.steps, batch)
    layers = objective.layers
    order = list(model.blocks)
    deepest = max(layers, key=lambda l: order.index(l) if l in order else -1)
    with frozen(model):
        with torch.no_grad():
            vf = valid_frames(model, activations(model, x[:1], layers), frames)
            # Fast path (single-layer objectives): the unpadded forward of x[..., lead:] gives exactly
            # the valid frames; used only if it reproduces the padded forward's objective.
            fast, lead = False, 0
            if len(layers) == 1:
                lead = vf[layers[0]].start * receptive_field(model, layers[0]).jump \
                    - receptive_field(model, layers[0]).offset
                try:
                    a = objective(activations(model, x[..., lead:], layers, unpadded=True))
                    b = objective(activations(model, x, layers), vf)
                    fast = a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5))
                except (ValueError, RuntimeError):
                    fast = False

        def evaluate(inp, detach=False):
            if fast:
                return objective(activations(model, inp[..., lead:], layers, detach=detach, unpadded=True))
            return objective(activations(model, inp, layers, detach=detach), vf)
        bar = tqdm(range(cfg.steps), desc=desc, leave=False, disable=not progress_enabled(progress))
        for step in bar:
            if cfg.natural:
                x = param()
            xin = jitter(x, random_offsets(batch, cfg.jitter, g)) if cfg.jitter else x
            if step < cfg.redirect_steps:
                with redirected_relus(model, deepest):
                    val = evaluate(xin)
            else:
                val = evaluate(xin)
            if val.shape != (batch,):
                raise ValueError(f"objective returned shape {tuple(val.shape)}, expected ({batch},)")
            loss = -(val / sc if sc is not None else val) + cfg.l2 * l2_penalty(x)
            if cfg.tv:
                loss = loss + cfg.tv * total_variation(x)
            if cfg.natural and cfg.saturation:
                loss = loss + cfg.saturation * param.unbounded().pow(2).flatten(1).mean(1)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            with torch.no_grad():
                if not cfg.natural and cfg.blur_every and (step + 1) % cfg.blur_every == 0:
                    x.copy_(gaussian_blur(x, cfg.blur_sigma_mel, cfg.blur_sigma_time))
                if not cfg.natural and lo is not None:
                    clip_to_range(x, lo, hi)
            losses[step] = loss.detach()
            values[step] = val.detach()
            if step % 10 == 0:
                bar.set_postfix(objective=f"{val.mean().item():.3g}")
        with torch.no_grad():
            if cfg.natural:
                x = param()
            final = objective(activations(model, x, layers), vf)  # always the padded reference forward
    return OptimizeResult(inputs=x.detach().clone(), values=final.detach(), losses=losses, objective=values,
                          config=cfg)
