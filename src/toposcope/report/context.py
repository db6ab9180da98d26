"""What every report section receives: :class:`ReportContext`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from .reader import RunData

__all__ = ["ReportContext"]


@dataclass(frozen=True)
class ReportContext:
    """The loaded run (the topographic one), the optional baseline run, and page-level facts.

    Sections are ``render(ctx) -> str``; they read only from here and never touch files other than those
    :class:`RunData` names (images and audio are embedded from their paths)."""

    run: RunData
    baseline: RunData | None = None
    corpus_summary: dict | None = None
    data_path: str | None = None
    title: str = "toposcope report"

    def __post_init__(self):
        if not isinstance(self.run, RunData):
            raise TypeError(f"ReportContext.run must be a RunData, got {type(self.run).__name__}")
        if self.baseline is not None and not isinstance(self.baseline, RunData):
            raise TypeError(f"ReportContext.baseline must be a RunData or None, got {type(self.baseline).__name__}")

    @property
    def models(self) -> list[RunData]:
        """``[run]`` or ``[run, baseline]``: the columns of every side-by-side table."""
        return [self.run] + ([self.baseline] if self.baseline is not None else [])

    @property
    def layers(self) -> list[str]:
        """Layer order of the page (that of the main run)."""
        return self.run.layer_names

    @cached_property
    def maps_payload(self) -> dict | None:
        """The arrays the interactive maps draw (embedded once as page data; see ``sections/maps.py``)."""
        from .sections.maps import maps_payload

        return maps_payload(self.models)
