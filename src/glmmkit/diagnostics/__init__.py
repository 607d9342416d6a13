"""Model checking: simulated (DHARMa-style) residuals and plots.

``DiagnosticsMixin`` gives every fit its diagnostics methods; the work is done
in this package's modules so that ``results.py`` stays about estimates.
"""

from __future__ import annotations


class DiagnosticsMixin:
    """Diagnostics methods shared by every fitted model (filled in by this package's modules)."""
