"""Random-effects terms with a covariance structure in the Bayesian model: their unconstrained
coordinates, priors and natural parameters.

lme4's terms ``(x | g)``, ``(1 | g)`` keep rstanarm's decov prior (``model.py``).  Every other
structure of ``glmmkit.covstruct`` (``diag``, ``homdiag``, ``cs``/``homcs``, ``ar1``/``hetar1``,
``toep``/``homtoep``, ``exp``/``ou``/``gau``/``mat``, and ``relmat`` terms) is sampled in its own
parameters φ (the frequentist θ slice: standard deviations, then the correlation's ψ) through
unconstrained coordinates u, one per φ:

* each standard deviation s = exp(u) (relative to the family's auxiliary parameter, as decov's are),
  prior decov's gamma(shape, rate = 1/scale) on s, by default decov(1, 1, 1, 1)'s exponential(1):
  for one column decov is exactly that, so ``(x || g)`` (scalar decov terms) and ``diag(x | g)`` get
  the same prior;
* ar1's / hetar1's ρ = tanh(u) (so ψ = sinh u), the Toeplitz terms' partial autocorrelations
  π_h = tanh(u_h), prior ``uniform()`` on (-1, 1) (each π_h uniform gives a proper prior over the
  positive definite Toeplitz correlations);
* cs's ρ = -a + (1 + a) logistic(u) over its valid range (-1/(k-1), 1), a = 1/(k-1), uniform there;
* a spatial range r = exp(u), prior half-normal(0, the largest distance between the term's
  positions), and Matérn's smoothness κ = exp(u), half-normal(0, 2.5).

Every prior enters with the Jacobian of its coordinate.  The random effects stay non-centred:
b_g = aux · T(φ) z_g with T the structure's template, so the gradient in u is the structure's own
Jacobian dT/dφ (``CovStructure.jacobian``) contracted with the density's gradient in T, times dφ/du.
A ``relmat`` term is one level with q columns Z L and T = s I, so b = s L z over the factor's levels.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import NotAvailableError

__all__ = ["is_decov", "StructInfo"]


def is_decov(cs) -> bool:
    """Whether a term's structure is lme4's (unstructured or scalar), sampled under decov.

    Parameters
    ----------
    cs : CovStructure
        The term's structure.

    Returns
    -------
    bool
    """
    from ..covstruct import Unstructured

    return type(cs) is Unstructured or type(cs).__name__ == "Scalar"


class StructInfo:
    """One structured term's coordinates, natural-parameter names and prior descriptors.

    Parameters
    ----------
    cs : CovStructure
        The term's structure.
    names : list of str
        The term's column names.
    label : str
        The term's label (for messages).

    Attributes
    ----------
    n_sd : int
        Leading coordinates that are log standard deviations.
    cmap : list of str
        Per correlation coordinate: ``"tanh"`` (ψ = sinh u), ``"logit"`` (ψ = u, cs), ``"log"`` (ψ = u, a
        log range or smoothness).
    params : list of tuple
        ``(name, kind, lower, upper, c, scale)`` per coordinate, for ``priors.default_priors``.
    diagonal : bool
        The template is diagonal (diag, homdiag, relmat): effects by elementwise products.
    relmat_L : ndarray or None
        The relationship factor of a relmat term (effects of the factor's levels are L b*).
    """

    def __init__(self, cs, names, label):
        from ..covstruct.correlated import AR1, CompoundSymmetry, ScaledCorrelation, Toeplitz
        from ..covstruct.relmat import RelatedLevels
        from ..covstruct.spatial import Matern, SpatialCorrelation
        from ..covstruct.unstructured import Diagonal, HomDiagonal

        self.cs = cs
        self.K = cs.k
        self.relmat_L = None
        self.diagonal = False
        self.cmap = []
        corr = []
        if isinstance(cs, RelatedLevels):
            self.n_sd, sd_names, self.diagonal = 1, ["sd_(Intercept)"], True
            self.relmat_L = np.asarray(cs.L, dtype=float)
        elif isinstance(cs, HomDiagonal):
            self.n_sd, sd_names, self.diagonal = 1, ["sd"], True
        elif isinstance(cs, Diagonal):
            self.n_sd, sd_names, self.diagonal = cs.k, [f"sd_{c}" for c in names], True
        elif isinstance(cs, ScaledCorrelation):
            self.n_sd = cs.n_sd
            sd_names = [f"sd_{c}" for c in names] if cs.heterogeneous else ["sd"]
            if isinstance(cs, CompoundSymmetry):
                self.cmap = ["logit"]
                corr = [("rho", "corr", -cs._a, 1.0, 1.0, 1.0)]
            elif isinstance(cs, AR1):
                self.cmap = ["tanh"]
                corr = [("rho", "corr", -1.0, 1.0, 2.0, 1.0)]
            elif isinstance(cs, Toeplitz):
                self.cmap = ["tanh"] * cs.n_corr
                corr = [(f"pacf{h + 1}", "corr", -1.0, 1.0, 2.0, 1.0) for h in range(cs.n_corr)]
            elif isinstance(cs, SpatialCorrelation):
                spread = float(np.max(cs.distances)) if cs.k > 1 else 1.0
                self.cmap = ["log"]
                corr = [("range", "range", 0.0, np.inf, 1.0, spread if spread > 0 else 1.0)]
                if isinstance(cs, Matern):
                    self.cmap.append("log")
                    corr.append(("kappa", "kappa", 0.0, np.inf, 1.0, 2.5))
            else:
                raise NotAvailableError(f"term {label!r}: the Bayesian model has no prior for the covariance "
                                        f"structure {type(cs).__name__}")
        else:
            raise NotAvailableError(f"term {label!r}: the Bayesian model has no prior for the covariance "
                                    f"structure {type(cs).__name__}")
        self.params = [(nm, "sd", 0.0, np.inf, 1.0, 1.0) for nm in sd_names] + corr
        self.n_par = len(self.params)
        if self.n_par != cs.n_params:  # pragma: no cover - a structure whose φ is laid out otherwise
            raise NotAvailableError(f"term {label!r}: {type(cs).__name__} has {cs.n_params} parameters, "
                                    f"the Bayesian parameterisation {self.n_par}")
        self._tanh = np.array([m == "tanh" for m in self.cmap], dtype=bool)
        self._scaled = isinstance(cs, ScaledCorrelation)
        self.rows, self.cols = cs.pattern
        self.priors = None  # the used priors, set by the model from its PriorSet

    # ------------------------------------------------------------------ coordinates
    def phi(self, u):
        """φ and dφ/du at the coordinates u.

        Parameters
        ----------
        u : ndarray, shape (n_par,)
            The term's unconstrained coordinates.

        Returns
        -------
        (ndarray, ndarray)
        """
        u = np.asarray(u, dtype=float)
        phi = u.copy()
        d = np.ones_like(u)
        s = np.exp(u[: self.n_sd])
        phi[: self.n_sd] = s
        d[: self.n_sd] = s
        if self._tanh.any():
            uc = u[self.n_sd:]
            phi[self.n_sd:] = np.where(self._tanh, np.sinh(uc), uc)
            d[self.n_sd:] = np.where(self._tanh, np.cosh(uc), 1.0)
        return phi, d

    def phis(self, U):
        """φ of many points at once.

        Parameters
        ----------
        U : ndarray, shape (m, n_par)
            Coordinates, one row per point.

        Returns
        -------
        ndarray, shape (m, n_par)
        """
        U = np.asarray(U, dtype=float)
        P = U.copy()
        P[:, : self.n_sd] = np.exp(U[:, : self.n_sd])
        if self._tanh.any():
            P[:, self.n_sd:] = np.where(self._tanh[None, :], np.sinh(U[:, self.n_sd:]), U[:, self.n_sd:])
        return P

    def template(self, u):
        """T(φ(u)), the structure's template (all NaN where its correlation is numerically singular).

        Parameters
        ----------
        u : ndarray, shape (n_par,)
            The term's unconstrained coordinates.

        Returns
        -------
        ndarray, shape (K, K)
        """
        return self.cs.template(self.phi(u)[0])

    def diag_scale(self, U):
        """The template's diagonal for many points (diagonal structures only).

        Parameters
        ----------
        U : ndarray, shape (m, n_par)
            Coordinates.

        Returns
        -------
        ndarray, shape (m, K)
        """
        s = np.exp(np.asarray(U, dtype=float)[:, : self.n_sd])
        return np.broadcast_to(s, (s.shape[0], self.K)) if self.n_sd == 1 else s

    def grad_u(self, u, gT):
        """The gradient in u of a function of T, from its gradient in T's entries.

        Parameters
        ----------
        u : ndarray, shape (n_par,)
            The term's unconstrained coordinates.
        gT : ndarray, shape (K, K)
            d f / d T (lower triangle read).

        Returns
        -------
        ndarray, shape (n_par,)
        """
        phi, d = self.phi(u)
        if self.diagonal:
            gd = np.diag(gT)
            g = np.array([gd.sum()]) if self.n_sd == 1 else gd.copy()
            return g * d
        if self._scaled:
            return self._scaled_grad(phi, gT) * d
        J = self.cs.jacobian(phi)
        return (J.T @ gT[self.rows, self.cols]) * d

    def _scaled_grad(self, phi, gT):
        """The Jacobian contraction of T = D chol(R(ψ)) (``ScaledCorrelation.jacobian``'s formula) without
        forming the Jacobian, and without scipy's triangular solver, slow on a few-column matrix."""
        cs = self.cs
        psi = phi[self.n_sd:]
        L = np.linalg.cholesky(cs.correlation(psi))
        sd = cs._sd(phi)
        GL = gT * L
        g = np.empty(self.n_par)
        g[: self.n_sd] = GL.sum(axis=1) if cs.heterogeneous else GL.sum()
        if cs.n_corr:
            Li = np.linalg.inv(L)
            X = np.einsum("ik,ckl,jl->cij", Li, cs.correlation_derivatives(psi), Li)
            Pm = np.tril(X)
            Pm[:, np.arange(self.K), np.arange(self.K)] *= 0.5
            dL = np.einsum("ik,ckj->cij", L, Pm)
            g[self.n_sd:] = np.einsum("ij,cij->c", gT * sd[:, None], dL)
        return g

    def logprior(self, u):
        """The priors' log-density in u (Jacobians included) and its gradient.

        Parameters
        ----------
        u : ndarray, shape (n_par,)
            The term's unconstrained coordinates.

        Returns
        -------
        (float, ndarray)
        """
        lp = 0.0
        g = np.empty(self.n_par)
        for i, sp in enumerate(self.priors):
            if sp.kind == "corr":
                a, b = sp.used.logp_grad(float(u[i]))
            else:
                a, b = sp.used.logp_grad_log(float(u[i]))
            lp += a
            g[i] = b
        return lp, g

    # ------------------------------------------------------------------ reporting
    def natural_draws(self, U, mult, group):
        """The natural parameters of many points, under their draw names (``sd|g``, ``rho|g`` ...).

        Parameters
        ----------
        U : ndarray, shape (m, n_par)
            Coordinates, one row per draw.
        mult : ndarray, shape (m,)
            The family's auxiliary parameter per draw (ones without one): standard deviations are in
            its units.
        group : str
            The suffix of the names: the term's label (its grouping factor's name for the factor's first
            term).

        Returns
        -------
        dict
            Name -> ndarray (m,).
        """
        from ..covstruct.correlated import Toeplitz

        U = np.asarray(U, dtype=float)
        out = {}
        for i in range(self.n_sd):
            out[f"{self.params[i][0]}|{group}"] = np.exp(U[:, i]) * mult
        uc = U[:, self.n_sd:]
        if isinstance(self.cs, Toeplitz):
            pacf = np.tanh(uc)
            rho = _acf_from_pacf_many(pacf)
            for h in range(pacf.shape[1]):
                out[f"rho{h + 1}|{group}"] = rho[:, h]
            return out
        for j, m in enumerate(self.cmap):
            nm, kind, lo, hi, c, _ = self.params[self.n_sd + j]
            if kind == "corr":
                p = 1.0 / (1.0 + np.exp(-c * uc[:, j]))
                out[f"{nm}|{group}"] = lo + (hi - lo) * p
            else:
                out[f"{nm}|{group}"] = np.exp(uc[:, j])
        return out


def _acf_from_pacf_many(pacf):
    """Lag correlations ρ_1..ρ_m from partial autocorrelations, many rows at once (Durbin-Levinson)."""
    m_draws, m = pacf.shape
    rho = np.ones((m_draws, m + 1))
    coef = np.zeros((m_draws, 0))
    for n in range(m):
        p = pacf[:, n:n + 1]
        coef = np.concatenate([coef - p * coef[:, ::-1], p], axis=1)
        rho[:, n + 1] = np.einsum("dj,dj->d", coef, rho[:, n::-1][:, : n + 1])
    return rho[:, 1:]

