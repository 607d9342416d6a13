"""Positions of a term's random effects from coordinate columns (time, x/y), as indicator columns."""

from __future__ import annotations

import numpy as np

__all__ = ["unique_positions", "indicator_columns"]


def unique_positions(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of ``coords``, sorted, and each row's index among them.

    Parameters
    ----------
    coords : numpy.ndarray, shape (n, dim)
        Coordinate columns of the rows.

    Returns
    -------
    tuple of numpy.ndarray
        ``(positions, inverse)``: positions of shape (k, dim), lexicographically sorted, and
        inverse of shape (n,) with ``positions[inverse] == coords``.
    """
    pos, inverse = np.unique(coords, axis=0, return_inverse=True)
    return pos, inverse.reshape(-1)


def indicator_columns(coords: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """n x k indicators of each row's position among ``positions``.

    Parameters
    ----------
    coords : numpy.ndarray, shape (n, dim) or (n,)
        Coordinates of the rows.
    positions : numpy.ndarray, shape (k, dim)
        The term's positions (from ``unique_positions`` at fit time).

    Returns
    -------
    numpy.ndarray, shape (n, k)
        One 1 per row, in the column of its position.

    Raises
    ------
    ArgumentError
        Naming the first row whose coordinates are not among the positions.
    """
    from ..exceptions import ArgumentError

    coords = np.asarray(coords, dtype=float).reshape(coords.shape[0], -1)
    k = positions.shape[0]
    both = np.vstack([positions, coords])
    _, inv = np.unique(both, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    lookup = np.full(inv.max() + 1, -1, dtype=np.int64)
    lookup[inv[:k]] = np.arange(k)
    codes = lookup[inv[k:]]
    bad = np.flatnonzero(codes < 0)
    if bad.size:
        raise ArgumentError(f"row {int(bad[0])} has coordinates {tuple(coords[bad[0]].tolist())} that are not among "
                            f"the {k} positions the model was fitted on ({bad.size} such rows); random effects "
                            "at new positions are not predicted (re_form='~0' predicts at the population level)")
    out = np.zeros((coords.shape[0], k))
    out[np.arange(coords.shape[0]), codes] = 1.0
    return out
