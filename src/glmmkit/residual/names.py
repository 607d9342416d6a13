"""The residual structures' formula names (shared by the parser and the structures)."""

from __future__ import annotations

import difflib

__all__ = ["RESIDUAL_STRUCTURES", "suggest"]

RESIDUAL_STRUCTURES = ("ar1", "exp", "cs", "un", "toep")


def suggest(name: str) -> str:
    """A hint for an unknown residual structure name, for error messages.

    Parameters
    ----------
    name : str
        The name as written in ``residual=``.

    Returns
    -------
    str
        ``" (did you mean 'ar1'?)"`` for the closest known name, or ``""``.
    """
    close = difflib.get_close_matches(name, RESIDUAL_STRUCTURES, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
