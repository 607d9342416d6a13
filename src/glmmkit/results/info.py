"""``FitInfo``: the machine-readable record of how a fit went (``fit.optimizer_info``)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FitInfo"]


@dataclass
class FitInfo:
    """Machine-readable record of how a fit went (``fit.optimizer_info``).

    Attributes
    ----------
    optimizer : str
        The optimiser that produced the estimates (``"nlopt BOBYQA"``, ``"L-BFGS-B"``, ...).
    n_evals : int
        Objective evaluations.
    converged : bool
        Whether the optimiser reported convergence (and the checks after it passed).
    message : str
        The optimiser's own message.
    on_boundary : list of str
        θ parameters estimated at their bound (zero variance).
    time_s : float
        Wall-clock time of the whole fit.
    gradient_norm, hessian_positive_definite, pirls_failures : optional
        GLMM fits: largest |gradient| of the deviance at the estimates (free
        parameters), whether the Hessian in (θ, β) is positive definite, and how
        many PIRLS runs ended without reaching the mode.
    messages : list of str
        Everything the user should know about the fit (dropped rows, dropped
        columns, singularity) in plain words.
    method : str
        What was maximised: ``"REML"``, ``"ML"``, ``"Laplace"``, ``"AGQ(k)"``, ``"nAGQ=0"``, ``"PQL"``.
    restarts : list of dict
        Every optimiser run after the first, and why: ``{"optimizer", "start", "reason",
        "loglik", "converged", "chosen"}``; empty when the first run ended well.
    rescaled : list of str
        Fixed-effect columns centred/scaled for the optimiser because of their extreme
        magnitude; the estimates are reported on the user's scale.
    singular : bool
        A variance estimated as zero or a correlation as ±1 (also ``fit.singular``).
    engine : str
        The penalised least-squares engine the fit ran on (``linalg.choose.make_system``):
        ``"blocked"`` (the lead factor block-diagonal, the other factors in a dense Schur
        complement), ``"nested"`` (a chain of nested factors, every one block-diagonal),
        ``"fixed-only"``, or ``""`` where the fit did not go through that choice.
    """

    optimizer: str
    n_evals: int
    converged: bool
    message: str
    on_boundary: list
    time_s: float = 0.0
    messages: list = field(default_factory=list)
    gradient_norm: float | None = None
    hessian_positive_definite: bool | None = None
    pirls_failures: int | None = None
    method: str = ""
    restarts: list = field(default_factory=list)
    rescaled: list = field(default_factory=list)
    singular: bool = False
    engine: str = ""

    def as_dict(self) -> dict:
        """The record as a plain dict.

        Returns
        -------
        dict
            Every field by name (a shallow copy).
        """
        return dict(self.__dict__)
