"""Rows arranged by cluster and time, for residual (R-side) correlation structures.

``residual="ar1(visit | Subject)"`` correlates the residuals of one cluster (a level
of ``Subject``) by their times; rows of different clusters are independent, so
R = diag(R_1, ..., R_m).  ``ClusterLayout`` sorts the rows by (cluster, time) once
and keeps what every structure needs: each row's cluster, time and position within
its cluster, the cluster sizes, and for structures over discrete times the index
of each row's time among all times (its *visit*).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["ResidualSpec", "parse_residual", "ClusterLayout"]

_SPEC = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*$", re.S)


@dataclass(frozen=True)
class ResidualSpec:
    """A residual structure as written: ``"ar1(visit | Subject)"``.

    Attributes
    ----------
    name : str
        The structure (``ar1``, ``exp``, ``cs``, ``un``, ``toep``).
    time : str or None
        The time column; None for ``1`` (the rows' order within each cluster, nlme's default).
    group : tuple of str
        Column(s) whose interaction is the cluster.
    source : str
        The text as given, for messages.
    """

    name: str
    time: str | None
    group: tuple
    source: str

    @property
    def columns(self) -> tuple:
        """The columns the structure reads: the group column(s), then the time column.

        Returns
        -------
        tuple of str
            Column names.
        """
        return self.group + ((self.time,) if self.time else ())

    @property
    def group_name(self) -> str:
        """The cluster's name, its columns joined by ``:``.

        Returns
        -------
        str
            E.g. ``"Subject"`` or ``"School:Class"``.
        """
        return ":".join(self.group)


def parse_residual(text: str) -> ResidualSpec:
    """Parse ``"name(time | group)"``.

    Parameters
    ----------
    text : str
        E.g. ``"ar1(visit | Subject)"``, ``"cs(1 | Subject)"``, ``"exp(Time | Rat)"``.

    Returns
    -------
    ResidualSpec
        The structure's name, time column (None for ``1``), group column(s) and the text.

    Raises
    ------
    FormulaError
        For text of another shape, an unknown name (with a suggestion), no group, or no time
        column for ``un``, ``toep`` and ``exp``.
    """
    from ..exceptions import FormulaError
    from .names import RESIDUAL_STRUCTURES, suggest

    if not isinstance(text, str):
        raise FormulaError(f"residual= takes a string such as 'ar1(visit | Subject)', got {type(text).__name__}")
    m = _SPEC.match(text)
    if not m or "|" not in m.group(2):
        raise FormulaError(f"residual={text!r}: write name(time | cluster), e.g. 'ar1(visit | Subject)', "
                           "'cs(1 | Subject)', 'exp(Time | Rat)'")
    name = m.group(1)
    if name not in RESIDUAL_STRUCTURES:
        raise FormulaError(f"unknown residual structure {name!r} in residual={text!r}{suggest(name)}; "
                           f"known: {', '.join(RESIDUAL_STRUCTURES)}")
    lhs, rhs = (p.strip() for p in m.group(2).split("|", 1))
    group = tuple(g.strip().strip("`") for g in rhs.split(":") if g.strip())
    if not group:
        raise FormulaError(f"residual={text!r} has no cluster after '|' (e.g. '| Subject')")
    time = None if lhs in ("1", "") else lhs.strip("`")
    if time is None and name in ("un", "toep", "exp"):
        raise FormulaError(f"residual={text!r}: {name}() needs a time column before '|' "
                           f"(e.g. '{name}(visit | {group[0]})')")
    return ResidualSpec(name, time, group, text)


class ClusterLayout:
    """The fitted rows sorted by (cluster, time).

    Parameters
    ----------
    spec : ResidualSpec
        The parsed ``residual=`` text (time column and cluster).
    data : DataFrame
        The model frame's complete rows (in fit order).
    integer_times : bool
        Times must be whole numbers (ar1, toep: lags count steps).
    unique_times : bool
        At most one row per time in a cluster (every structure over times).

    Attributes
    ----------
    order : ndarray of int
        Fit rows in sorted order (``A[order]`` sorts a row array).
    codes : ndarray of int
        Cluster of each sorted row (0..n_clusters-1, sorted).
    times : ndarray of float
        Time of each sorted row (the position within the cluster for ``1``).
    first : ndarray of bool
        Sorted rows that start a cluster.
    within : ndarray of int
        Position of each sorted row within its cluster (0, 1, ...).
    sizes : ndarray of int
        Rows per cluster.
    labels : list of str
        Cluster labels.
    """

    def __init__(self, spec: ResidualSpec, data: pd.DataFrame, *, integer_times: bool, unique_times: bool):
        from ..exceptions import DataError
        from ..frame import factor_labels

        self.spec = spec
        labels = factor_labels(data, spec.group)
        codes, uniques = pd.factorize(labels, sort=True)
        n = codes.shape[0]
        if spec.time is None:
            raw_t = np.zeros(n)
        else:
            col = data[spec.time]
            if not pd.api.types.is_numeric_dtype(col):
                raise DataError(f"residual={spec.source!r}: time column {spec.time!r} must be numeric "
                                f"(got {col.dtype}); code the visits as numbers")
            raw_t = np.asarray(col, dtype=float)
        order = np.lexsort((raw_t, codes)) if spec.time is not None else np.argsort(codes, kind="stable")
        self.order = order
        self.codes = codes[order]
        self.labels = [str(u) for u in uniques]
        self.first = np.ones(n, dtype=bool)
        self.first[1:] = self.codes[1:] != self.codes[:-1]
        starts = np.flatnonzero(self.first)
        self.sizes = np.diff(np.append(starts, n))
        self.within = np.arange(n) - np.repeat(starts, self.sizes)
        self.times = self.within.astype(float) if spec.time is None else raw_t[order]
        if spec.time is not None:
            if integer_times and not np.allclose(self.times, np.round(self.times)):
                bad = int(order[np.flatnonzero(~np.isclose(self.times, np.round(self.times)))[0]])
                raise DataError(f"residual={spec.source!r} needs integer times, but {spec.time!r} is "
                                f"{raw_t[bad]:g} in row {bad}; for continuous time use "
                                f"'exp({spec.time} | {spec.group_name})' (nlme's corCAR1)")
            if unique_times:
                dup = np.flatnonzero(~self.first & (np.diff(self.times, prepend=np.nan) == 0))
                if dup.size:
                    i = dup[0]
                    raise DataError(
                        f"residual={spec.source!r}: cluster {self.labels[self.codes[i]]!r} has two rows at "
                        f"{spec.time} = {self.times[i]:g} (rows {int(order[i - 1])} and {int(order[i])}, "
                        f"{dup.size} such pair(s)); each time may occur once per cluster")
        self.n = n

    @property
    def n_clusters(self) -> int:
        """Number of clusters.

        Returns
        -------
        int
            The number of distinct cluster labels.
        """
        return self.sizes.shape[0]

    def visits(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct times (sorted) and each sorted row's index among them.

        Returns
        -------
        tuple of numpy.ndarray
            ``(values, idx)``: shapes (k,) and (n,).
        """
        values, idx = np.unique(self.times, return_inverse=True)
        return values, idx.reshape(-1)

    def check_nested(self, structure) -> None:
        """Every random-effects factor must be constant within each cluster (the cluster nested in it).

        Whitening mixes a cluster's rows, which must then share their levels (nlme's rule too).

        Parameters
        ----------
        structure : ModelStructure
            The random-effects structure (its blocks' factors).

        Raises
        ------
        FormulaError
            Naming the first cluster whose rows lie in several levels of a factor.
        """
        from ..exceptions import FormulaError

        for b in structure.blocks:
            c = b.factor.codes[self.order]
            changes = (c[1:] != c[:-1]) & ~self.first[1:]
            if changes.any():
                i = int(np.flatnonzero(changes)[0]) + 1
                raise FormulaError(
                    f"residual={self.spec.source!r}: the rows of cluster {self.labels[self.codes[i]]!r} lie in "
                    f"several levels of {b.factor.name!r}; the residual cluster must be nested in every grouping "
                    f"factor of the random effects (e.g. '| {b.factor.name}')")
