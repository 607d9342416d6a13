"""The parameter vector an objective is optimised over, as named blocks.

An objective's parameters are the concatenation of blocks: the covariance
parameters θ of a linear predictor's random terms, its fixed effects β, and a
family's own parameters ψ (log scale); the zero-inflation and dispersion
predictors of a model add their own β (and θ) blocks.  ``ParameterLayout`` is the
one place that knows where each block sits, its names, bounds and BOBYQA step,
so that objectives, the optimisation driver, the Hessian → covariance step and
the packaging of a fit address parameters by name instead of by offsets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ParameterBlock", "ParameterLayout", "Parts", "covariance_layout"]


@dataclass(frozen=True)
class ParameterBlock:
    """One named block of an objective's parameters.

    Attributes
    ----------
    name : str
        The block's key in the layout: ``"theta"``, ``"beta"``, ``"psi"`` (later ``"beta_zi"``, ...).
    names : tuple of str
        One label per entry (as the fit reports them).
    lower, upper : ndarray
        Bounds per entry (±inf when free).
    step : ndarray
        BOBYQA's first trust-region radius per entry.
    probe : bool
        Entries of this block that end on a lower bound of 0 are tried off it (covariance
        parameters of scalar terms, whose deviance is even there: ``driver.probe_off_bound``).
    sign_flips : dict
        ``{i: js}`` (indices in the block): when entry i is on its bound of 0 the probes also try
        entries js negated (``CovStructure.sign_flips``).
    """

    name: str
    names: tuple
    lower: np.ndarray
    upper: np.ndarray
    step: np.ndarray
    probe: bool = False
    sign_flips: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Number of entries of the block.

        Returns
        -------
        int
            ``len(names)``.
        """
        return len(self.names)

    @classmethod
    def free(cls, name: str, names, step: float = 0.1) -> "ParameterBlock":
        """An unbounded block (fixed effects).

        Parameters
        ----------
        name : str
            The block's key (``"beta"``, ``"beta_zi"``, ...).
        names : sequence of str
            One label per entry.
        step : float, default 0.1
            BOBYQA's first trust-region radius of every entry.

        Returns
        -------
        ParameterBlock
            With bounds ±inf.
        """
        k = len(names)
        return cls(name, tuple(names), np.full(k, -np.inf), np.full(k, np.inf), np.full(k, step))

    @classmethod
    def bounded(cls, name: str, names, bound: float, step: float = 0.5) -> "ParameterBlock":
        """A block bounded to [-bound, bound] (log-scale family parameters).

        Parameters
        ----------
        name : str
            The block's key (``"psi"``).
        names : sequence of str
            One label per entry.
        bound : float
            Every entry lies in [-bound, bound].
        step : float, default 0.5
            BOBYQA's first trust-region radius of every entry.

        Returns
        -------
        ParameterBlock
        """
        k = len(names)
        return cls(name, tuple(names), np.full(k, -bound), np.full(k, bound), np.full(k, step))

    @classmethod
    def covariance(cls, structure, step: float = 0.25) -> "ParameterBlock":
        """The θ of a ``ModelStructure`` with the bounds its covariance structures set.

        Parameters
        ----------
        structure : ModelStructure
            Its θ names, bounds and sign flips are taken.
        step : float, default 0.25
            BOBYQA's first trust-region radius of every entry.

        Returns
        -------
        ParameterBlock
            Named ``"theta"``, with ``probe`` set.
        """
        return cls("theta", tuple(structure.theta_names), np.asarray(structure.theta_lower, dtype=float),
                   np.asarray(structure.theta_upper, dtype=float), np.full(structure.n_theta, step), probe=True,
                   sign_flips=dict(getattr(structure, "theta_sign_flips", {})))


class Parts:
    """The blocks of one parameter vector as attributes (views into it): ``parts.theta``, ``parts.beta``.

    Parameters
    ----------
    values : dict
        Block name -> ndarray; each becomes an attribute (and an item: ``parts["theta"]``).
    """

    def __init__(self, values: dict):
        self.__dict__.update(values)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.__dict__[name]

    def __repr__(self) -> str:
        return "Parts(" + ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()) + ")"


class ParameterLayout:
    """Ordered named blocks of a parameter vector.

    Parameters
    ----------
    blocks : sequence of ParameterBlock
        In the order of the vector; names must be distinct.
    """

    def __init__(self, blocks):
        self.blocks = tuple(blocks)
        names = [b.name for b in self.blocks]
        if len(set(names)) != len(names):
            raise ValueError(f"parameter blocks must have distinct names, got {names}")
        self._slices = {}
        start = 0
        for b in self.blocks:
            self._slices[b.name] = slice(start, start + b.size)
            start += b.size
        self.size = start
        self.lower = np.concatenate([b.lower for b in self.blocks]) if self.blocks else np.zeros(0)
        self.upper = np.concatenate([b.upper for b in self.blocks]) if self.blocks else np.zeros(0)
        self.step = np.concatenate([b.step for b in self.blocks]) if self.blocks else np.zeros(0)

    # ----- addressing -----
    def __contains__(self, name: str) -> bool:
        return name in self._slices

    def slice(self, name: str) -> slice:
        """Where block ``name`` sits in the vector (an empty slice at the end when it is absent).

        Parameters
        ----------
        name : str
            The block's key.

        Returns
        -------
        slice
        """
        return self._slices.get(name, slice(self.size, self.size))

    def size_of(self, name: str) -> int:
        """Number of entries of block ``name``.

        Parameters
        ----------
        name : str
            The block's key.

        Returns
        -------
        int
            0 when the layout has no such block.
        """
        s = self.slice(name)
        return s.stop - s.start

    @property
    def names(self) -> list:
        """Labels of every entry of the vector, block by block.

        Returns
        -------
        list of str
        """
        return [n for b in self.blocks for n in b.names]

    def split(self, x) -> Parts:
        """The blocks of ``x`` by name (views), absent blocks as empty arrays.

        Parameters
        ----------
        x : array-like, shape (size,)
            A parameter vector of this layout.

        Returns
        -------
        Parts
            One attribute per block.

        Raises
        ------
        ValueError
            When ``x`` does not have ``size`` entries.
        """
        x = np.asarray(x, dtype=float)
        if x.shape[0] != self.size:
            raise ValueError(f"expected {self.size} parameters ({', '.join(b.name for b in self.blocks)}), "
                             f"got {x.shape[0]}")
        return Parts({b.name: x[self._slices[b.name]] for b in self.blocks})

    def join(self, **parts) -> np.ndarray:
        """The vector from its blocks by name (every block must be given).

        Parameters
        ----------
        **parts : array-like
            Block name -> its entries (``theta=..., beta=...``); extra names are ignored.

        Returns
        -------
        ndarray, shape (size,)
        """
        missing = [b.name for b in self.blocks if b.name not in parts]
        if missing:
            raise ValueError(f"missing parameter blocks: {missing}")
        return np.concatenate([np.asarray(parts[b.name], dtype=float).reshape(b.size) for b in self.blocks])

    def block(self, name: str, M: np.ndarray, other: str | None = None) -> np.ndarray:
        """The (name, other) sub-block of a matrix over this layout (a covariance or Hessian).

        Parameters
        ----------
        name : str
            The rows' block.
        M : ndarray, shape (size, size)
            A matrix over this layout.
        other : str, optional
            The columns' block; ``name`` when omitted.

        Returns
        -------
        ndarray
            A view of ``M``.
        """
        return M[self.slice(name), self.slice(other or name)]

    # ----- bounds -----
    def scipy_bounds(self) -> list:
        """Bounds as scipy's ``minimize`` takes them (None for an infinite bound).

        Returns
        -------
        list of (float or None, float or None)
            One (lower, upper) pair per entry.
        """
        return [(lo if np.isfinite(lo) else None, hi if np.isfinite(hi) else None)
                for lo, hi in zip(self.lower, self.upper)]

    def clip(self, x) -> np.ndarray:
        """``x`` moved into the layout's bounds.

        Parameters
        ----------
        x : array-like, shape (size,)
            A parameter vector.

        Returns
        -------
        ndarray, shape (size,)
            A new array, each entry clipped to [lower, upper].
        """
        return np.clip(np.asarray(x, dtype=float), self.lower, self.upper)

    def free_mask(self, x, tol: float = 1e-8) -> np.ndarray:
        """Entries not held on a finite bound (those whose gradient must vanish at an optimum).

        Parameters
        ----------
        x : array-like, shape (size,)
            A parameter vector.
        tol : float, default 1e-8
            Distance from a bound that counts as on it.

        Returns
        -------
        ndarray of bool, shape (size,)
            True for the free entries.
        """
        x = np.asarray(x, dtype=float)
        return ~((np.isfinite(self.lower) & (x <= self.lower + tol))
                 | (np.isfinite(self.upper) & (x >= self.upper - tol)))

    def at_bound(self, x, name: str = "theta", tol: float = 0.0) -> list:
        """Labels of block ``name``'s entries estimated on one of their finite bounds.

        Parameters
        ----------
        x : array-like, shape (size,)
            A parameter vector (the estimates).
        name : str, default "theta"
            The block to look at.
        tol : float, default 0.0
            Distance from a bound that counts as on it.

        Returns
        -------
        list of str
        """
        s = self.slice(name)
        x = np.asarray(x, dtype=float)[s]
        lo, hi = self.lower[s], self.upper[s]
        hit = (np.isfinite(lo) & (x <= lo + tol)) | (np.isfinite(hi) & (x >= hi - tol))
        names = self.names[s]
        return [names[i] for i in np.flatnonzero(hit)]

    def probe_candidates(self, x, tol: float = 1e-6) -> np.ndarray:
        """Indices of entries of probe blocks that end on a lower bound of 0.

        Parameters
        ----------
        x : array-like, shape (size,)
            A parameter vector (the optimiser's end).
        tol : float, default 1e-6
            Distance from the bound that counts as on it.

        Returns
        -------
        ndarray of int
            Indices into the whole vector; empty when none.
        """
        x = np.asarray(x, dtype=float)
        idx = [np.arange(self.size)[self._slices[b.name]] for b in self.blocks if b.probe]
        if not idx:
            return np.zeros(0, dtype=int)
        idx = np.concatenate(idx)
        lo = self.lower[idx]
        return idx[(lo == 0.0) & (x[idx] <= lo + tol)]

    def sign_flips(self, k: int) -> np.ndarray:
        """Indices negated with entry ``k`` when it is probed off its bound (empty when none).

        Parameters
        ----------
        k : int
            Index of the probed entry in the whole vector.

        Returns
        -------
        ndarray of int
            Indices into the whole vector.
        """
        for b in self.blocks:
            s = self._slices[b.name]
            if s.start <= k < s.stop and (k - s.start) in b.sign_flips:
                return s.start + np.asarray(b.sign_flips[k - s.start], dtype=int)
        return np.zeros(0, dtype=int)


def covariance_layout(structure) -> ParameterLayout:
    """The layout of an objective over θ alone (the profiled LMM criterion, nAGQ = 0).

    Parameters
    ----------
    structure : ModelStructure
        The model's random-effects structure.

    Returns
    -------
    ParameterLayout
        One block, ``"theta"``.
    """
    return ParameterLayout([ParameterBlock.covariance(structure)])
