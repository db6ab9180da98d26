"""Input geometry and parameterisation of optimal inputs (docs/method.md § Optimal inputs).

**Geometry.** Output frame ``t`` of a layer sees input frames
``[t * J - P, t * J - P + R - 1]`` with ``J`` the product of the strides up to the layer, ``R`` the
receptive field and ``P = sum_l pad_l * J_{l-1}`` the accumulated left padding
(:func:`receptive_field`). A frame is *valid* when that span lies inside the input, i.e. it never
sees zero padding. An optimal input is sized for ``n`` valid output frames covering about
``seconds`` of audio (default 0.5 s): ``T = lead + R + (n - 1) * J`` feature frames, ``lead =
ceil(P / J) * J - P`` (``0`` unless the padding is not a multiple of the stride)
(:func:`input_geometry`), and objectives average over exactly those ``n`` valid frames, so the
data-side maximum (windows of ``n`` valid frames of real utterances) is the same quantity.

**Parameterisation.** :class:`MelInput` (``--unconstrained``) holds the normalised log-mel input
directly ("pixel" space, as in Yosinski et al. 2015): ``(B, n_mels, T)``, initialised from seeded
Gaussian noise of std ``init_std`` (0.1 by default, near the per-bin data mean 0 of normalised features).

:class:`SpectralMelInput` (natural optimal inputs, the default) follows Lucid's decorrelated
Fourier parameterisation (Olah et al. 2017, "Feature Visualization"): the parameter is the 2-D real
FFT ``Z`` of an unbounded image ``y`` over (mel, time), scaled by ``1 / max(|f|, 1 / max(M, T))^decay``
(``|f|`` the 2-D frequency in cycles per bin/frame); so gradient steps change slow, broad structure
(formant-like bands, syllable-length events) much faster than bin-to-bin stripes, which real
spectrograms do not have. Each bin is then squashed into its band's natural range:
``x = lo + (hi - lo) * sigmoid(y)`` with ``[lo, hi]`` the 0.5 / 99.5 percentiles of real normalised
log-mel in that band, so every bin stays inside it by construction (``naturalness`` 1 up to float
rounding; it is still measured, never assumed). ``y = 0`` is the middle of every band's range.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ReceptiveField", "receptive_field", "InputGeometry", "input_geometry", "MelInput", "SpectralMelInput"]


@dataclass(frozen=True)
class ReceptiveField:
    """``size`` R, ``jump`` J (total stride) and ``offset`` P (accumulated left padding), in input frames."""

    size: int
    jump: int
    offset: int

    def span(self, t: int) -> tuple[int, int]:
        """Input frames ``[first, last]`` seen by output frame ``t``."""
        first = t * self.jump - self.offset
        return first, first + self.size - 1

    def valid_frames(self, n_input: int, n_output: int) -> slice:
        """Output frames whose span lies inside ``[0, n_input - 1]`` (possibly empty)."""
        lo = -(-self.offset // self.jump)  # ceil(P / J)
        hi = (n_input - self.size + self.offset) // self.jump  # last t with span end <= n_input - 1
        hi = min(hi, n_output - 1)
        return slice(lo, max(lo, hi + 1))


def receptive_field(model, layer: str) -> ReceptiveField:
    """Receptive field of ``layer``'s output frames in feature frames, from ``model.geometry(layer)``."""
    size, jump, offset = 1, 1, 0
    for kernel, stride, pad in model.geometry(layer):
        size += (kernel - 1) * jump
        offset += pad * jump
        jump *= stride
    return ReceptiveField(size, jump, offset)


@dataclass(frozen=True)
class InputGeometry:
    """An optimal input of ``frames`` feature frames whose ``valid`` output frames of ``layer``
    (``n_valid`` of them) the objectives average over."""

    layer: str
    frames: int
    valid: slice
    rf: ReceptiveField

    @property
    def n_valid(self) -> int:
        return self.valid.stop - self.valid.start


def _output_length(model, layer: str, n: int) -> int:
    for kernel, stride, pad in model.geometry(layer):
        n = (n + 2 * pad - kernel) // stride + 1
    return n


def input_geometry(model, layer: str, seconds: float = 0.5) -> InputGeometry:
    """Input size for ``layer`` with about ``seconds`` of valid output frames (at least one)."""
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    rf = receptive_field(model, layer)
    feats = model.cfg.features
    n_valid = max(1, round(seconds * feats.sample_rate / feats.hop / rf.jump))
    lead = -(-rf.offset // rf.jump) * rf.jump - rf.offset  # first valid frame may start past input frame 0
    frames = lead + rf.size + (n_valid - 1) * rf.jump
    valid = rf.valid_frames(frames, _output_length(model, layer, frames))
    if valid.stop - valid.start != n_valid:  # geometry bookkeeping must agree with the conv arithmetic
        raise RuntimeError(f"internal: expected {n_valid} valid frames of {layer} for {frames} input frames, "
                           f"got {valid}")
    return InputGeometry(layer, frames, valid, rf)


class MelInput(torch.nn.Module):
    """The optimised input itself: a ``(batch, n_mels, frames)`` parameter (normalised log-mel)."""

    def __init__(self, batch: int, n_mels: int, frames: int, *, init_std: float = 0.1,
                 generator: torch.Generator | None = None, init: torch.Tensor | None = None):
        super().__init__()
        if init is not None:
            init = torch.as_tensor(init, dtype=torch.float32)
            if init.shape != (batch, n_mels, frames):
                raise ValueError(f"init must be {(batch, n_mels, frames)}, got {tuple(init.shape)}")
            x = init.clone()
        else:
            if min(batch, n_mels, frames) < 1:
                raise ValueError(f"input shape must be positive, got {(batch, n_mels, frames)}")
            x = torch.randn(batch, n_mels, frames, generator=generator) * float(init_std)
        self.x = torch.nn.Parameter(x)

    def forward(self) -> torch.Tensor:
        """``(batch, n_mels, frames)``."""
        return self.x


class SpectralMelInput(torch.nn.Module):
    """Natural optimal inputs: a ``(batch, n_mels, frames)`` input in Lucid's 1/f Fourier parameterisation,
    squashed per band into ``[lo, hi]`` (``(n_mels,)``); see the module docstring.

    The parameter ``z`` is ``(batch, n_mels, frames // 2 + 1, 2)`` (real, imaginary). ``init``: a
    ``(batch, n_mels, frames)`` input to start from (mapped back through the squash and the FFT; bins on
    or outside the range bounds start just inside them).
    """

    def __init__(self, batch: int, n_mels: int, frames: int, lo, hi, *, decay: float = 1.0, init_std: float = 0.1,
                 generator: torch.Generator | None = None, init: torch.Tensor | None = None):
        super().__init__()
        if min(batch, n_mels, frames) < 1:
            raise ValueError(f"input shape must be positive, got {(batch, n_mels, frames)}")
        lo = torch.as_tensor(lo, dtype=torch.float32).reshape(-1)
        hi = torch.as_tensor(hi, dtype=torch.float32).reshape(-1)
        if lo.numel() != n_mels or hi.numel() != n_mels or not bool((hi > lo).all()):
            raise ValueError(f"natural range needs lo < hi for each of the {n_mels} mel bands")
        if decay < 0:
            raise ValueError(f"decay must be >= 0, got {decay}")
        self.shape = (int(batch), int(n_mels), int(frames))
        self.register_buffer("lo", lo[:, None])
        self.register_buffer("hi", hi[:, None])
        self.register_buffer("width", (hi - lo)[:, None])
        fy = torch.fft.fftfreq(n_mels)[:, None]
        fx = torch.fft.rfftfreq(frames)[None, :]
        f = torch.sqrt(fx ** 2 + fy ** 2)
        self.register_buffer("scale", 1.0 / torch.clamp(f, min=1.0 / max(n_mels, frames)) ** float(decay))
        if init is not None:
            init = torch.as_tensor(init, dtype=torch.float32)
            if init.shape != self.shape:
                raise ValueError(f"init must be {self.shape}, got {tuple(init.shape)}")
            u = ((init - self.lo) / self.width).clamp(1e-4, 1 - 1e-4)
            y = torch.log(u) - torch.log1p(-u)
            spec = torch.fft.rfft2(y, norm="ortho") / self.scale
            z = torch.stack([spec.real, spec.imag], dim=-1)
        else:
            z = torch.randn(batch, n_mels, frames // 2 + 1, 2, generator=generator) * float(init_std)
        self.z = torch.nn.Parameter(z.contiguous())

    def unbounded(self) -> torch.Tensor:
        """``y (batch, n_mels, frames)`` before the squash."""
        spec = torch.complex(self.z[..., 0], self.z[..., 1]) * self.scale
        return torch.fft.irfft2(spec, s=self.shape[1:], norm="ortho")

    def forward(self) -> torch.Tensor:
        """``(batch, n_mels, frames)`` normalised log-mel, every bin inside its band's ``[lo, hi]``."""
        x = self.lo + self.width * torch.sigmoid(self.unbounded())
        return torch.minimum(torch.maximum(x, self.lo), self.hi)  # float rounding at saturation
