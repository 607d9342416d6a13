"""Self-contained HTML report of a fit (``fit.report(path)`` / ``glmmkit fit --report``)."""

from __future__ import annotations


class ReportMixin:
    """``report`` and notebook display for every fitted model."""
