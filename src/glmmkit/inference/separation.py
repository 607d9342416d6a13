"""Complete and quasi-complete separation of a binomial response by the fixed-effect design.

With separation the likelihood has no maximum: some coefficients run to ±∞, and
random effects do not rescue them (seed 001).  Following Konis (2007), the data
are separated exactly when a direction β ≠ 0 exists with s_i x_i'β ≥ 0 for every
success (s = +1) and failure (s = -1) and strict inequality somewhere; the linear
programme

    maximise Σ s_i x_i'β   subject to   s_i x_i'β ≥ 0,  -1 ≤ β_j ≤ 1

has optimum 0 exactly when the data overlap.  A second programme (maximise t with
s_i x_i'β ≥ t) tells complete from quasi-complete separation.  Rows with both
successes and failures (binomial trials) give both constraints.

Because the linear programme costs about 0.7 s at 1e5 rows, ``glmer`` first looks
for a certificate that the maximum exists (the GLM's IRLS converged to a finite β
whose score vanishes, with no fitted probability at 0 or 1: a stationary point of
the concave log-likelihood is its maximum) and solves the programme only when
that certificate is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SeparationResult", "separation_lp", "check_separation", "mle_certificate"]


@dataclass
class SeparationResult:
    """Outcome of the separation check.

    Attributes
    ----------
    kind : str
        ``"none"``, ``"quasi-complete"`` or ``"complete"``.
    columns : list of str
        Fixed-effect columns whose estimates diverge (nonzero in the separating direction).
    direction : dict
        Column -> sign (+1 / -1) of the divergence.
    """

    kind: str
    columns: list = field(default_factory=list)
    direction: dict = field(default_factory=dict)

    @property
    def separated(self) -> bool:
        """Whether the check found separation (``kind`` is not ``"none"``).

        Returns
        -------
        bool
            True for quasi-complete or complete separation.
        """
        return self.kind != "none"

    def message(self) -> str:
        """A sentence for the user: what separated, which estimates diverge, and what to do.

        Returns
        -------
        str
            "no separation: ..." when none; otherwise the kind, the diverging columns with the sign of
            their divergence (the first few when many) and the remedies.
        """
        if not self.separated:
            return "no separation: the maximum-likelihood estimates exist"
        shown = SHOWN_COLUMNS if len(self.columns) > SHOWN_COLUMNS + 1 else len(self.columns)
        cols = ", ".join(f"{c} ({'+' if self.direction[c] > 0 else '-'}∞)" for c in self.columns[:shown])
        if shown < len(self.columns):  # a many-level factor: the message stays readable (all in .columns)
            cols += f" and {len(self.columns) - shown} more columns (fit.separation.columns lists them)"
        return (
            f"{self.kind} separation: the response is perfectly predicted by the fixed effects, so the "
            f"estimates of {cols} diverge and their standard errors are meaningless. Remove or merge the "
            "offending predictor levels, or use a penalised (bias-reduced, weakly informative prior) fit"
        )


#: separated columns named in the message; the rest are counted
SHOWN_COLUMNS = 5


def _signed_rows(X, y, wt):
    """Rows of s_i x_i: successes with +, failures with - (a row with both gives both)."""
    k = y * wt
    succ = k > 1e-12
    fail = (wt - k) > 1e-12
    return np.vstack([X[succ], -X[fail]])


def separation_lp(X: np.ndarray, y: np.ndarray, wt: np.ndarray | None = None, names=None) -> SeparationResult:
    """Linear-programming check (Konis 2007) of the design ``X`` against a binomial response.

    A direction β with s_i x_i'β >= 0 for every row (s_i = +1 for successes, -1 for failures) and
    strict for some means the likelihood increases without bound along β: separation.  A second LP
    asks whether some β separates every row strictly (complete separation).

    Parameters
    ----------
    X : numpy.ndarray, shape (n, p)
        Fixed-effects design (full column rank).
    y : numpy.ndarray, shape (n,)
        Response as proportions of successes in [0, 1].
    wt : numpy.ndarray, shape (n,), optional
        Binomial trials per row; default 1.  A row with both successes and failures counts twice.
    names : sequence of str, optional
        Column names of X; default ``x0, x1, ...``.

    Returns
    -------
    SeparationResult
        ``kind`` ("none", "quasi-complete", "complete") and the separated columns with their signs.
    """
    from scipy.optimize import linprog

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    wt = np.ones_like(y) if wt is None else np.asarray(wt, dtype=float)
    names = list(names) if names is not None else [f"x{j}" for j in range(X.shape[1])]
    p = X.shape[1]
    if p == 0:
        return SeparationResult("none")
    scale = np.maximum(np.abs(X).max(axis=0), 1e-12)  # columns on one scale: the box bounds mean the same
    S = _signed_rows(X / scale, y, wt)
    if S.shape[0] == 0:
        return SeparationResult("none")
    res = linprog(-S.sum(axis=0), A_ub=-S, b_ub=np.zeros(S.shape[0]), bounds=[(-1.0, 1.0)] * p, method="highs")
    tol = 1e-7 * S.shape[0]
    if res.status != 0 or -res.fun <= tol:
        return SeparationResult("none")
    beta = res.x
    # complete: some direction separates every row strictly (maximise t, s_i x_i'β ≥ t)
    c = np.zeros(p + 1)
    c[-1] = -1.0
    A = np.hstack([-S, np.ones((S.shape[0], 1))])
    res2 = linprog(c, A_ub=A, b_ub=np.zeros(S.shape[0]), bounds=[(-1.0, 1.0)] * p + [(0.0, 1.0)], method="highs")
    kind = "complete" if res2.status == 0 and -res2.fun > 1e-9 else "quasi-complete"
    big = np.abs(beta) > 1e-6 * np.abs(beta).max()
    cols = [n for n, b in zip(names, big) if b]
    return SeparationResult(kind, cols, {n: int(np.sign(v)) for n, v, b in zip(names, beta, big) if b})


def mle_certificate(X, y, wt, offset, beta, family) -> bool:
    """Whether ``beta`` is (numerically) the finite maximum of the binomial GLM likelihood.

    True when the estimates are finite and below 25 in absolute value, no fitted probability is
    within 1e-10 of 0 or 1, and the Newton step left is negligible (< 1e-4 (1 + max |β|)).

    Parameters
    ----------
    X : numpy.ndarray, shape (n, p)
        Fixed-effects design.
    y : numpy.ndarray, shape (n,)
        Response proportions.
    wt : numpy.ndarray, shape (n,)
        Binomial trials (prior weights).
    offset : numpy.ndarray, shape (n,)
        Offset of the linear predictor.
    beta : numpy.ndarray, shape (p,)
        Candidate estimates.
    family : Family
        The binomial family (its link and variance function are used).

    Returns
    -------
    bool
        True when ``beta`` certifies that the maximum-likelihood estimates exist (no separation).
    """
    if not np.all(np.isfinite(beta)) or np.max(np.abs(beta), initial=0.0) > 25.0:
        return False
    eta = X @ beta + offset
    mu = family.link.inverse(eta)
    if np.min(mu * (1.0 - mu), initial=1.0) < 1e-10:
        return False
    d = family.link.mu_eta(eta)
    score = X.T @ (wt * (y - mu) * d / family.variance(mu))
    info = (X * (wt * d * d / family.variance(mu))[:, None]).T @ X
    try:
        step = np.linalg.solve(info, score)  # the Newton step left: negligible at the maximum
    except np.linalg.LinAlgError:
        return False
    return bool(np.max(np.abs(step), initial=0.0) < 1e-4 * (1.0 + np.max(np.abs(beta), initial=0.0)))


def check_separation(formula: str, data, weights=None) -> SeparationResult:
    """Check a binomial model's fixed-effect design for separation, without fitting it.

    Parameters
    ----------
    formula : str
        lme4 formula; the random-effect terms are ignored (they cannot prevent separation).
    data : pandas.DataFrame
        The data, with the formula's columns.
    weights : array-like or column name, optional
        Trials for a proportion response.

    Returns
    -------
    SeparationResult
    """
    from ..families import get_family
    from ..formula import parse_formula
    from ..frame import build_model_frame, drop_aliased_columns

    fam = get_family("binomial")
    frame = build_model_frame(parse_formula(formula), data, weights=weights, family=fam)
    wt = np.ones(frame.nobs) if frame.weights is None else frame.weights
    fam.check_response(frame.y, wt, frame.response_name)
    X, kept, _ = drop_aliased_columns(frame.X, frame.x_names)
    return separation_lp(X, frame.y, wt, [frame.x_names[j] for j in kept])
