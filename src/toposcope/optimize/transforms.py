"""Regularising transforms for optimal inputs (docs/method.md § Optimal inputs; Yosinski et al. 2015, §3).

All act on ``(B, n_mels, T)`` normalised log-mel inputs.

* :func:`l2_penalty` -- L2 decay as a loss term, per batch element (``(B,)``): ``mean(x^2)``.
* :func:`gaussian_blur` -- separable Gaussian blur over (mel, time), reflect padding; applied to the
  input *in place every* ``blur_every`` *steps* by the loop ("periodic blur", Yosinski's
  ``blur_every``/``blur_radius``), not inside the graph.
* :func:`jitter` -- shift in time by ``offset`` frames with edge replication (the model sees
  ``x[t - offset]``); :func:`random_offsets` draws one offset per batch element from a seeded
  generator. Jitter is differentiable: the gradient flows back to the unshifted input.
* :func:`total_variation` -- mean absolute difference of neighbouring bins (mel and time), per batch
  element (``(B,)``): a loss term against isolated spikes and stripes.
* :func:`clip_to_range` -- project every bin into the real data's ``[lo, hi]`` (per-bin min/max of
  normalised training features), in place after each step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["l2_penalty", "total_variation", "gaussian_kernel", "gaussian_blur", "jitter", "random_offsets", "clip_to_range"]


def l2_penalty(x: torch.Tensor) -> torch.Tensor:
    """``(B, M, T)`` -> ``(B,)`` mean squared value."""
    return x.pow(2).flatten(1).mean(dim=1)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """``(B, M, T)`` -> ``(B,)``: ``mean|x[:, m+1] - x[:, m]| + mean|x[..., t+1] - x[..., t]|``."""
    tv = x.new_zeros(x.shape[0])
    if x.shape[1] > 1:
        tv = tv + (x[:, 1:] - x[:, :-1]).abs().flatten(1).mean(1)
    if x.shape[2] > 1:
        tv = tv + (x[..., 1:] - x[..., :-1]).abs().flatten(1).mean(1)
    return tv


def gaussian_kernel(sigma: float, truncate: float = 2.0) -> torch.Tensor:
    """Normalised 1-D Gaussian ``(2 * ceil(truncate * sigma) + 1,)``; ``sigma <= 0`` gives ``[1.]``."""
    if sigma <= 0:
        return torch.ones(1)
    r = max(1, int(math.ceil(truncate * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _blur_axis(x: torch.Tensor, k: torch.Tensor, dim: int) -> torch.Tensor:
    if k.numel() == 1:
        return x
    B, M, T = x.shape
    r = k.numel() // 2
    if dim == 2:  # time
        y = x.reshape(B * M, 1, T)
        n = T
    else:  # mel: move mel last
        y = x.transpose(1, 2).reshape(B * T, 1, M)
        n = M
    mode = "reflect" if n > r else "replicate"
    y = F.conv1d(F.pad(y, (r, r), mode=mode), k.view(1, 1, -1))
    return y.reshape(B, M, T) if dim == 2 else y.reshape(B, T, M).transpose(1, 2)


def gaussian_blur(x: torch.Tensor, sigma_mel: float = 0.5, sigma_time: float = 0.5) -> torch.Tensor:
    """``(B, M, T)`` -> same shape, blurred with Gaussians of the given std (in bins / frames)."""
    if x.dim() != 3:
        raise ValueError(f"expected (batch, n_mels, frames), got {tuple(x.shape)}")
    x = _blur_axis(x, gaussian_kernel(sigma_mel).to(x), 1)
    return _blur_axis(x, gaussian_kernel(sigma_time).to(x), 2)


def jitter(x: torch.Tensor, offsets) -> torch.Tensor:
    """Shift each batch element right by ``offsets[b]`` frames (negative: left), replicating edges.

    ``(B, M, T)`` -> ``(B, M, T)``; ``out[b, :, t] = x[b, :, clamp(t - offsets[b], 0, T - 1)]``.
    """
    B, M, T = x.shape
    off = torch.as_tensor(offsets, dtype=torch.long).reshape(-1)
    if off.numel() != B:
        raise ValueError(f"need one offset per batch element ({B}), got {off.numel()}")
    idx = (torch.arange(T)[None, :] - off[:, None]).clamp(0, T - 1)  # (B, T)
    return torch.gather(x, 2, idx[:, None, :].expand(B, M, T))


def random_offsets(batch: int, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """``(batch,)`` integer offsets uniform in ``[-max_shift, max_shift]``."""
    if max_shift <= 0:
        return torch.zeros(batch, dtype=torch.long)
    return torch.randint(-max_shift, max_shift + 1, (batch,), generator=generator)


@torch.no_grad()
def clip_to_range(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Clamp ``(B, M, T)`` in place to per-bin ``lo[M] <= x <= hi[M]``; returns ``x``."""
    lo = torch.as_tensor(lo, dtype=x.dtype).reshape(1, -1, 1)
    hi = torch.as_tensor(hi, dtype=x.dtype).reshape(1, -1, 1)
    if lo.shape[1] != x.shape[1] or hi.shape[1] != x.shape[1]:
        raise ValueError(f"data range has {lo.shape[1]} / {hi.shape[1]} bins, the input {x.shape[1]}")
    return x.copy_(torch.maximum(torch.minimum(x, hi), lo))
