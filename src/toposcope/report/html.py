"""Small HTML helpers of the report: escaping, numbers, embedded images and audio, "missing" notes.

Every label, path and transcript goes through :func:`esc` (:func:`html.escape`); JSON inside ``<script>``
goes through :func:`script_json`, so no string can close the element.
"""

from __future__ import annotations

import base64
import html as _html
import json
import math
from pathlib import Path

import numpy as np

__all__ = ["esc", "script_json", "data_uri", "img", "audio", "missing", "pct", "num", "pval", "finite",
           "round_list", "table"]

esc = _html.escape


def script_json(obj) -> str:
    """JSON safe to place inside ``<script type="application/json">``: ``<``, ``>``, ``&`` and the JS line
    separators are written as ``\\uXXXX`` escapes, so ``</script>`` and ``<!--`` can never appear."""
    s = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def data_uri(path: Path, mime: str) -> str:
    """The file's bytes as a ``data:`` URI (the page embeds everything, so it works offline)."""
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def img(path: Path, alt: str, cls: str = "fig", width: int | None = None) -> str:
    """An ``<img>`` with the PNG at ``path`` embedded."""
    w = f' width="{int(width)}"' if width else ""
    return f'<img class="{esc(cls)}" src="{data_uri(path, "image/png")}" alt="{esc(alt)}" title="{esc(alt)}"{w}>'


def audio(path: Path, label: str) -> str:
    """An ``<audio>`` player with the WAV at ``path`` embedded."""
    return (f'<audio controls preload="none" title="{esc(label)}" aria-label="{esc(label)}" '
            f'src="{data_uri(path, "audio/wav")}"></audio>')


def missing(what: str, how: str | None = None) -> str:
    """A note that something is not there, naming the command that makes it."""
    extra = f" Make it with <code>{esc(how)}</code>." if how else ""
    return f'<p class="missing">{esc(what)}{extra}</p>'


def finite(x) -> bool:
    """True for a finite number (``None``, strings and NaN are not)."""
    if isinstance(x, bool):
        return False
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def pct(x) -> str:
    """``0.123`` -> ``"12.3 %"``; ``"n/a"`` for a missing value."""
    return "n/a" if not finite(x) else f"{100 * float(x):.1f} %"


def num(x, digits: int = 3) -> str:
    """Fixed point with ``digits`` decimals (scientific for very small/large values); ``"n/a"`` if missing."""
    if not finite(x):
        return "n/a"
    x = float(x)
    if x != 0 and digits >= 3 and (abs(x) < 10 ** -(digits) or abs(x) >= 1e5):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}f}"


def pval(p) -> str:
    """A p-value: 3 decimals, or ``1.0e-04`` style below 0.001; ``"n/a"`` if missing."""
    if not finite(p):
        return "n/a"
    p = float(p)
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def round_list(a, sig: int = 4) -> list[float]:
    """Values rounded to ``sig`` significant digits (keeps the embedded JSON small); non-finite -> 0."""
    a = np.asarray(a, dtype=np.float64)
    return [float(f"{v:.{sig}g}") if np.isfinite(v) else 0.0 for v in a.ravel()]


def table(head: str, rows: list[str], cls: str = "") -> str:
    """``<table>`` from a header row's inner HTML (``<th>`` cells, already escaped) and body rows."""
    c = f' class="{esc(cls)}"' if cls else ""
    return f"<table{c}>{head}{''.join(rows)}</table>"
