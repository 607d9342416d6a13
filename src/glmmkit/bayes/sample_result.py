"""What an MCMC run returns (``SampleResult``): kept draws on the unconstrained scale and the
per-draw statistics, shared by the sampler's engines."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SampleResult"]

_STAT_KEYS = ("diverging", "tree_depth", "n_steps", "step_size", "energy", "acceptance")


@dataclass
class SampleResult:
    """Draws and per-draw statistics of an MCMC run.

    Attributes
    ----------
    draws : ndarray, shape (chains, draws, dim)
        The kept draws on the unconstrained scale.
    stats : dict of str to ndarray, each shape (chains, draws)
        ``diverging`` (bool), ``tree_depth``, ``n_steps`` (leapfrog steps), ``step_size``,
        ``energy`` (Hamiltonian of the draw) and ``acceptance`` (mean tree acceptance statistic).
    warmup : dict
        ``step_size`` (chains,) and ``inv_mass`` (chains, dim) at the end of warm-up (``inv_mass``
        is None where the engine does not expose it), ``tune`` (warm-up draws per chain) and
        ``stats``: the per-draw statistics of the warm-up draws, as in ``stats``.
    ebfmi : ndarray, shape (chains,)
        Energy Bayesian fraction of missing information of each chain.
    engine : str
        The engine that ran: ``"nutpie"``, ``"nutpie-numba"`` or ``"numpy"``.
    seed : int or None
        The seed given.
    info : dict
        Engine-specific extras (empty unless an engine fills it).
    """

    draws: np.ndarray
    stats: dict
    warmup: dict
    ebfmi: np.ndarray
    engine: str
    seed: int | None = None
    info: dict = field(default_factory=dict)

    @property
    def n_divergent(self) -> int:
        """Number of divergent transitions after warm-up, over all chains.

        Returns
        -------
        int
            The count of ``stats["diverging"]``.
        """
        return int(np.sum(self.stats["diverging"]))
