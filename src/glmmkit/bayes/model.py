"""The posterior log-density of a mixed model and its exact gradient, in an unconstrained parameterisation.

A :class:`PosteriorModel` is built from glmmkit's pipeline (the model frame and the
random-effects structure ``glmer`` / ``lmer`` build; ``from_formula`` runs those steps without
fitting, ``from_problem`` takes a frequentist fit's ``_problem``).  The unconstrained vector is

``x = [β, log aux, (term parameters) per term, z per term]``

* β: the fixed effects with the intercept on the centred predictors (rstanarm's parameterisation:
  the non-intercept columns are centred at their means; the intercept reported by :meth:`unpack` is
  the uncentred one);
* log aux: log σ (gaussian), log θ (NB2's reciprocal dispersion), log shape (Gamma), log φ (beta);
* per term with K columns, decov's parameters: log τ, then (K > 1) K - 1 softmax coordinates of the
  simplex of variance proportions (the last pinned at 0) and K(K - 1)/2 unconstrained canonical
  partial correlations (tanh) of the correlation matrix's Cholesky factor, row by row;
* a term with another covariance structure (``diag``, ``ar1``, ``cs``, ``toep``, ``exp``, a ``relmat``
  term ...): one coordinate per parameter of its structure, log standard deviations, then its
  correlation's coordinates (:mod:`glmmkit.bayes.structured`), and b_g = aux · T(φ) z_g with T the
  structure's template;
* z: the term's standard-normal random effects, level-major (level g's K effects together), with
  b_g = T z_g and T = diag(sd) L, times the auxiliary parameter where the family has one (rstanarm).

The log-density includes every Jacobian of those transforms and the normalising constants of every
prior except the LKJ's (a constant of K and the regularization).  The likelihood's constants that do
not depend on the parameters (log y!, binomial coefficients) are left out.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import digamma, expit, gammaln

from ..exceptions import ArgumentError, NotAvailableError
from . import priors as _priors
from . import structured as _structured

__all__ = ["PosteriorModel"]

_FAMILIES = ("gaussian", "binomial", "poisson", "negative_binomial", "gamma", "beta")
#: dense Z (n x q) below this many entries; per-column bincounts above
_DENSE_MAX = 4_000_000


class _Term:
    """One random-effects term's precomputed pieces (the hot path reads only these)."""

    def __init__(self, t, prior, at: int, z_at: int):
        self.label, self.group, self.names = t.label, t.group, list(t.names)
        self.K, self.q = t.k, t.nlevels
        self.levels = list(t.factor.levels)
        self.codes = np.asarray(t.factor.codes, dtype=np.int64)
        self.cols = np.ascontiguousarray(np.asarray(t.columns, dtype=float))
        K = self.K
        self.struct = None if _structured.is_decov(t.structure) else _structured.StructInfo(t.structure, self.names,
                                                                                             self.label)
        self.n_par = (self.struct.n_par if self.struct is not None
                      else 1 if K == 1 else 1 + (K - 1) + K * (K - 1) // 2)
        self.par = slice(at, at + self.n_par)
        self.z = slice(z_at, z_at + self.q * K)
        self.prior = prior
        self.il, self.jl = np.tril_indices(K, -1)
        self.mask = np.tril(np.ones((K, K)))
        self.eye = np.eye(K)  # row-by-row lower triangle: (1,0), (2,0), (2,1), ...
        if self.struct is not None:
            return
        self.shape = float(prior.shape)
        self.rate = 1.0 / float(prior.cov_scale)
        self.eta_lkj = float(prior.regularization)
        conc = np.broadcast_to(np.asarray(prior.concentration, dtype=float), (K,)).copy()
        if np.ndim(prior.concentration) and np.size(prior.concentration) != K:
            raise ArgumentError(f"decov(concentration=) for term {self.label!r} has {np.size(prior.concentration)} "
                                f"values for its {K} columns")
        self.conc = conc
        self.tau_const = self.shape * math.log(self.rate) - math.lgamma(self.shape)
        self.dir_const = math.lgamma(float(conc.sum())) - float(np.sum(gammaln(conc)))
        # coefficient of log(1 - z_ik²) in LKJ-Cholesky density + Jacobians (independent of the row)
        self.cpc_coef = 0.5 * (K - self.jl - 2.0) + self.eta_lkj


#: (family, link) pairs with a numba kernel (glmmkit.bayes._numba_density): every link of the six families
_NUMBA_KINDS = frozenset({("gaussian", "identity"), ("binomial", "logit"), ("poisson", "log"),
                          ("negative_binomial", "log"), ("gamma", "log"), ("beta", "logit")})
_NUMBA_LINKS = {"gaussian": ("identity", "log", "inverse"),
                "binomial": ("logit", "probit", "cloglog", "cauchit", "log", "identity"),
                "poisson": ("log", "identity", "sqrt"), "negative_binomial": ("log", "identity", "sqrt"),
                "gamma": ("log", "inverse", "identity"), "beta": ("logit", "probit", "cloglog", "cauchit")}


def _numba_importable() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - numba is a base dependency
        return False
    return True


class _LogDensity:
    """``model.logp_and_grad`` for the kinds with a numba kernel: the numpy method, plus the compiled
    version's ``numba_logp_and_grad`` / ``numba_data`` that :func:`glmmkit.bayes.sampler.sample` looks for."""

    __slots__ = ("model",)

    def __init__(self, model):
        self.model = model

    def __call__(self, x):
        return PosteriorModel.logp_and_grad(self.model, x)

    def _numba_ok(self) -> bool:
        from ._numba_density import supports_term

        return (self.link_name in _NUMBA_LINKS.get(self.family_name, ()) and all(supports_term(t) for t in self.terms)
                and _numba_importable())

    def _numba_missing(self) -> str:
        if self.link_name not in _NUMBA_LINKS.get(self.family_name, ()):
            return f"no numba log-density for the {self._kind[0]} family with the {self.link_name} link"
        from ._numba_density import supports_term

        kinds = sorted({type(t.struct.cs).__name__ for t in self.terms if not supports_term(t)})
        return "no numba log-density for the covariance structure(s) " + ", ".join(kinds)

    @property
    def numba_logp_and_grad(self):
        return self.model.numba_logp_and_grad

    @property
    def numba_data(self):
        return self.model.numba_data


class PosteriorModel:
    """Posterior log-density and gradient of a GLMM / LMM under rstanarm's priors.

    Parameters
    ----------
    X : ndarray, shape (n, p)
        Fixed-effect model matrix (the kept columns).
    x_names : sequence of str
        Its column names.
    y : ndarray, shape (n,)
        Response (binomial: the proportion of successes).
    wt : ndarray, shape (n,)
        Prior weights (binomial: the trials).
    offset : ndarray, shape (n,)
        Offset on the linear-predictor scale.
    family : Family or None
        glmmkit family object; None for the gaussian with the identity link (an LMM).
    structure : ModelStructure
        The random-effects terms: lme4's (unstructured, scalar) under decov, any other covariance
        structure of ``glmmkit.covstruct`` under the priors of :mod:`glmmkit.bayes.structured`.
    priors : PriorSet or dict, optional
        A PriorSet, or overrides by name for :func:`glmmkit.bayes.priors.default_priors`.

    Attributes
    ----------
    dim : int
        Length of the unconstrained vector.
    names : list of str
        Names of its coordinates.
    family_name : str
        The family's name ("gaussian" for an LMM).
    prior_set : PriorSet
        The priors in use.
    """

    def __init__(self, X, x_names, y, wt, offset, family, structure, priors=None):
        self.family = family
        fam = "gaussian" if family is None else family.name
        if fam not in _FAMILIES:
            raise NotAvailableError(f"the Bayesian model supports the families {', '.join(_FAMILIES)}; "
                                    f"{fam!r} is not one of them")
        self.family_name = fam
        link = "identity" if family is None else family.link.name
        self.link_name = link
        self._link = None if family is None else family.link
        self._fast = {("gaussian", "identity"), ("binomial", "logit"), ("poisson", "log"), ("negative_binomial", "log"),
                      ("gamma", "log"), ("beta", "logit")}
        self._kind = (fam, link) if (fam, link) in self._fast else ("general", link)
        if family is not None and hasattr(family, "fixed") and family.fixed:
            raise NotAvailableError(f"family_params={family.fixed!r}: fixed family parameters are not available in the "
                                    "Bayesian model; give the parameter a prior instead")
        infos = [None if _structured.is_decov(t.structure) else _structured.StructInfo(t.structure, list(t.names),
                                                                                         t.label)
                 for t in structure.terms]
        self.X = np.ascontiguousarray(np.asarray(X, dtype=float))
        self.x_names = list(x_names)
        self.y = np.asarray(y, dtype=float)
        self.wt = np.asarray(wt, dtype=float)
        self.offset = np.asarray(offset, dtype=float)
        self.n, self.p = self.X.shape
        self.structure = structure
        self.has_intercept = "(Intercept)" in self.x_names
        self.icpt = self.x_names.index("(Intercept)") if self.has_intercept else None
        self.xbar = np.zeros(self.p)
        if self.has_intercept:
            self.xbar = self.X.mean(axis=0)
            self.xbar[self.icpt] = 0.0
        self.Xc = np.ascontiguousarray(self.X - self.xbar)
        self.coef_idx = np.array([j for j in range(self.p) if j != self.icpt], dtype=np.int64)
        terms = [(t.label, t.group) if info is None else (t.label, t.group, info.params)
                 for t, info in zip(structure.terms, infos)]
        if priors is None or isinstance(priors, dict):
            priors = _priors.default_priors(fam, self.y, self.X, self.x_names, terms, priors)
        self.prior_set = priors
        self.aux_name = _priors.AUX_NAMES.get(fam)
        self.family_param = {"gaussian": "sigma", "negative_binomial": "theta", "gamma": "shape", "beta": "phi"}.get(fam)
        at = self.p
        self.aux_i = None
        if self.aux_name is not None:
            self.aux_i = at
            at += 1
        n_par = sum((1 if t.k == 1 else t.k + t.k * (t.k - 1) // 2) if info is None else info.n_par
                    for t, info in zip(structure.terms, infos))
        z_at = at + n_par
        self.terms = []
        for t in structure.terms:
            tt = _Term(t, priors.covariance.get(t.label), at, z_at)
            if tt.struct is not None:
                tt.struct.priors = priors.structured[t.label]
            at += tt.n_par
            z_at += tt.q * tt.K
            self.terms.append(tt)
        self.dim = z_at
        self.z_all = slice(self.terms[0].z.start, z_at) if self.terms else slice(z_at, z_at)
        # one dense Z over all terms (level-major columns per term) for small models
        q_all = sum(t.q * t.K for t in self.terms)
        self._Z = None
        if self.n * q_all <= _DENSE_MAX:
            Z = np.zeros((self.n, q_all))
            c0 = 0
            rows = np.arange(self.n)[:, None]
            for t in self.terms:
                Z[rows, c0 + t.codes[:, None] * t.K + np.arange(t.K)[None, :]] = t.cols
                c0 += t.q * t.K
            self._Z = Z
            self._ZT = np.ascontiguousarray(Z.T)
        self._sd_y = float(np.std(self.y, ddof=1)) if self.n > 1 else 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            self._logy = np.log(self.y) if fam in ("gamma", "beta") else None
            self._log1my = np.log1p(-self.y) if fam == "beta" else None
        self._sw = float(self.wt.sum())
        self.names = self._names()
        self._numba_data = None
        if self._numba_ok():
            # the bound method the sampler receives carries the compiled density (nutpie engine)
            self.logp_and_grad = _LogDensity(self)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_problem(cls, problem, priors=None) -> "PosteriorModel":
        """The posterior of a frequentist fit's problem (``fit._problem``: an LmmProblem or GlmmProblem).

        Parameters
        ----------
        problem : LmmProblem or GlmmProblem
            Its frame, structure and kept columns are used (never its estimates).
        priors : PriorSet or dict, optional
            Overrides of rstanarm's defaults by name.

        Returns
        -------
        PosteriorModel
        """
        frame = problem.frame
        if getattr(problem, "submodels", ()):
            raise NotAvailableError("ziformula / dispformula models are not available in the Bayesian model")
        if getattr(problem, "residual", None) is not None:
            raise NotAvailableError("residual correlation structures are not available in the Bayesian model")
        X = np.asarray(frame.X)[:, problem.kept]
        names = [frame.x_names[j] for j in problem.kept]
        family = getattr(problem, "family", None)
        if family is not None and family.name == "gaussian" and family.link.name == "identity":
            family = None
        if family is None:
            wt = np.ones(frame.nobs) if frame.weights is None else np.asarray(frame.weights, float)
        else:
            wt = np.asarray(problem.wt, dtype=float)
            from ..families import get_family

            family = get_family(family)
        return cls(X, names, frame.y, wt, frame.offset, family, problem.structure, priors)

    @classmethod
    def from_formula(cls, formula, data, family="gaussian", *, link=None, weights=None, offset=None,
                     priors=None, relmat=None) -> "PosteriorModel":
        """Build the model as ``glmer`` / ``lmer`` do (frame, aliased columns dropped, structure), without fitting.

        Parameters
        ----------
        formula : str
            lme4 formula with at least one random-effects term.
        data : pandas.DataFrame
            The data.
        family : str or Family, default "gaussian"
            One of gaussian, binomial, poisson, negative_binomial, gamma, beta.
        link : str, optional
            The family's link (its default otherwise).
        weights, offset : array-like or column name, optional
            Prior weights (binomial: trials) and an offset.
        priors : PriorSet or dict, optional
            Overrides of rstanarm's defaults by name.
        relmat : dict, optional
            Known relationship matrices by factor, as :func:`glmmkit.lmer`'s.

        Returns
        -------
        PosteriorModel
        """
        from ..families import get_family
        from ..formula import parse_formula
        from ..frame import build_model_frame, drop_aliased_columns
        from ..fitting.finish import check_grouping
        from ..structure import build_structure
        from ..exceptions import FormulaError

        fam = get_family(family, link)
        lmm = fam.name == "gaussian" and fam.link.name == "identity"
        parsed = parse_formula(formula)
        if not parsed.random:
            raise FormulaError(f"formula {formula!r} has no random-effects term such as (1 | group)")
        frame = build_model_frame(parsed, data, weights=weights, offset=offset, family=None if lmm else fam)
        wt = np.ones(frame.nobs) if frame.weights is None else np.asarray(frame.weights, dtype=float)
        if not lmm:
            fam.check_response(frame.y, wt, frame.response_name)
        X, kept, _ = drop_aliased_columns(frame.X, frame.x_names)
        structure = build_structure(frame, relmat=relmat)
        check_grouping(structure, frame.nobs, lmm=lmm)
        names = [frame.x_names[j] for j in kept]
        return cls(X, names, frame.y, wt, frame.offset, None if lmm else fam, structure, priors)

    def _names(self):
        out = [f"beta[{n}]" for n in self.x_names]
        if self.aux_name is not None:
            out.append(f"log_{self.family_param}")
        for t in self.terms:
            if t.struct is not None:
                for nm, kind, *_ in t.struct.params:
                    out.append(f"{'log_' if kind != 'corr' else 'u_'}{nm}|{t.label}")
                continue
            out.append(f"log_tau|{t.label}")
            if t.K > 1:
                out += [f"simplex_{t.names[j]}|{t.label}" for j in range(t.K - 1)]
                out += [f"cpc_{t.names[i]}.{t.names[j]}|{t.label}" for i, j in zip(t.il, t.jl)]
        for t in self.terms:
            out += [f"z[{c} {t.group}:{lev}]" for lev in t.levels for c in t.names]
        return out

    # ------------------------------------------------------------------ per-term transforms
    @staticmethod
    def _term_factor(t: _Term, u):
        """T = diag(sd) L and the pieces its gradient needs, from the term's unconstrained parameters
        (a structured term: its template, the rest None)."""
        if t.struct is not None:
            return t.struct.template(u), None, None, None, None, None
        K = t.K
        tau = math.exp(u[0])
        if K == 1:
            return np.array([[tau]]), tau, None, None, None, None
        y = np.empty(K)
        y[:-1] = u[1:K]
        y[-1] = 0.0
        e = np.exp(y - y.max())
        pi = e / e.sum()
        sd = tau * np.sqrt(K * pi)
        z = np.tanh(u[K:])
        om = 1.0 - z * z
        # L[i, j] = z_ij Π_{k<j} sqrt(1 - z_ik²);  L[i, i] = Π_{k<i} sqrt(1 - z_ik²)
        Zm = np.zeros((K, K))
        Zm[t.il, t.jl] = z
        Om = np.ones((K, K))
        Om[t.il, t.jl] = om
        P = np.ones((K, K))
        P[:, 1:] = np.sqrt(np.cumprod(Om[:, :-1], axis=1))
        L = P * (Zm + t.eye) * t.mask
        T = sd[:, None] * L
        return T, tau, pi, sd, (z, om, P, L), y

    def _term_logprior(self, t: _Term, u, tau, pi, cpc):
        """decov's log-density in the unconstrained coordinates (Jacobians included) and its gradient."""
        g = np.zeros(t.n_par)
        lp = t.tau_const + t.shape * u[0] - t.rate * tau  # Gamma(τ) τ (the log τ Jacobian)
        g[0] = t.shape - t.rate * tau
        if t.K == 1:
            return lp, g
        K = t.K
        logpi = np.log(pi)
        a = t.conc
        # Dirichlet(π) and the softmax Jacobian Π π_k: Σ a_k log π_k
        lp += t.dir_const + float(a @ logpi)
        g[1:K] = a[:-1] - a.sum() * pi[:-1]
        z, om, _, _ = cpc
        c = np.abs(u[K:])
        log_om = 2.0 * (math.log(2.0) - c - np.log1p(np.exp(-2.0 * c)))  # log(1 - tanh²), stable in the tails
        lp += float(t.cpc_coef @ log_om)
        g[K:] = -2.0 * t.cpc_coef * z
        return lp, g

    # ------------------------------------------------------------------ the density
    def logp_and_grad(self, x):
        """Log posterior density (up to a constant) and its exact gradient.

        Parameters
        ----------
        x : ndarray, shape (dim,)
            A point in the unconstrained space.

        Returns
        -------
        (float, ndarray of shape (dim,))
            -inf and a zero gradient where the likelihood is not finite (an overflowing linear predictor).
        """
        x = np.asarray(x, dtype=float)
        grad = np.zeros(self.dim)
        p = self.p
        beta = x[:p]
        eta = self.Xc @ beta
        eta += self.offset
        ps = self.prior_set
        lp = 0.0
        # fixed-effect priors
        if self.has_intercept:
            a, ga = ps.intercept[1].logp_grad(beta[self.icpt:self.icpt + 1])
            lp += a
            grad[self.icpt] += ga[0]
        if self.coef_idx.size:
            a, gb = ps.coef_logp_grad(beta[self.coef_idx])
            lp += a
            grad[self.coef_idx] += gb
        # auxiliary parameter
        aux = None
        if self.aux_i is not None:
            la = x[self.aux_i]
            aux = math.exp(la)
            used = ps.aux[1]
            if isinstance(used, _priors.ExponentialPrior):
                a, ga = used.logp_grad(aux)
            else:
                a, ga = used.logp_grad(np.array([aux]))
                ga = float(ga[0])
            lp += a + la  # + log-Jacobian of aux = exp(la)
            grad[self.aux_i] += ga * aux + 1.0
        # rstanarm scales the decov covariance by the family's auxiliary parameter (σ, the NB size θ,
        # the Gamma shape, the beta precision; its prior-only draws confirm it): b = aux · T z
        sigma_scale = aux if aux is not None else 1.0
        # random effects
        facs = []
        zvec = x[self.z_all]
        lp -= 0.5 * float(zvec @ zvec)
        grad[self.z_all] -= zvec
        bparts = []
        for t in self.terms:
            u = x[t.par]
            T, tau, pi, sd, cpc, _ = self._term_factor(t, u)
            if t.struct is not None:
                if not np.all(np.isfinite(T)):  # a correlation numerically at ±1
                    return -np.inf, np.zeros(self.dim)
                a, g = t.struct.logprior(u)
            else:
                a, g = self._term_logprior(t, u, tau, pi, cpc)
            lp += a
            grad[t.par] += g
            Ts = T * sigma_scale
            Zt = x[t.z].reshape(t.q, t.K)
            B = Zt @ Ts.T
            facs.append((T, Ts, pi, sd, cpc, Zt))
            bparts.append(B.ravel())
        if self.terms:
            if self._Z is not None:
                eta += self._Z @ (np.concatenate(bparts) if len(bparts) > 1 else bparts[0])
            else:
                for t, B in zip(self.terms, bparts):
                    eta += np.einsum("nk,nk->n", t.cols, B.reshape(t.q, t.K)[t.codes])
        # likelihood
        ll, s, g_aux = self._loglik(eta, aux)
        if not np.isfinite(ll):
            return -np.inf, np.zeros(self.dim)
        lp += ll
        grad[:p] += self.Xc.T @ s
        if g_aux is not None:
            grad[self.aux_i] += g_aux
        if self.terms:
            if self._Z is not None:
                GB_all = self._ZT @ s
            c0 = 0
            for t, (T, Ts, pi, sd, cpc, Zt) in zip(self.terms, facs):
                if self._Z is not None:
                    GB = GB_all[c0:c0 + t.q * t.K].reshape(t.q, t.K)
                    c0 += t.q * t.K
                else:
                    GB = np.stack([np.bincount(t.codes, weights=s * t.cols[:, k], minlength=t.q) for k in range(t.K)],
                                  axis=1)
                grad[t.z] += (GB @ Ts).ravel()
                GT = GB.T @ Zt  # d/dTs, K x K (lower triangle used)
                A = GT * Ts  # d/dlog of each entry of Ts
                if aux is not None:
                    grad[self.aux_i] += float(A.sum())  # Ts is lower triangular, so is A
                gu = grad[t.par]
                if t.struct is not None:
                    gu += t.struct.grad_u(x[t.par], GT * sigma_scale)
                    continue
                if t.K == 1:
                    gu[0] += A[0, 0]
                    continue
                K = t.K
                arow = A.sum(axis=1)  # per row j: Σ_k dT_jk T_jk = g_sd_j sd_j
                gu[0] += arow.sum()
                gu[1:K] += 0.5 * (arow[:-1] - pi[:-1] * arow.sum())
                z, om, P, L = cpc
                gL = GT * t.mask * (sd * sigma_scale)[:, None]
                GLL = gL * L
                # S[i, m] = Σ_{j = m+1..i} gL[i, j] L[i, j]
                S = np.cumsum(GLL[:, ::-1], axis=1)[:, ::-1]
                S = np.concatenate([S[:, 1:], np.zeros((K, 1))], axis=1)
                il, jl = t.il, t.jl
                gu[K:] += gL[il, jl] * P[il, jl] * om - S[il, jl] * z
        return lp, grad

    def _numba_ok(self) -> bool:
        from ._numba_density import supports_term

        return (self.link_name in _NUMBA_LINKS.get(self.family_name, ()) and all(supports_term(t) for t in self.terms)
                and _numba_importable())

    def _numba_missing(self) -> str:
        if self.link_name not in _NUMBA_LINKS.get(self.family_name, ()):
            return f"no numba log-density for the {self._kind[0]} family with the {self.link_name} link"
        from ._numba_density import supports_term

        kinds = sorted({type(t.struct.cs).__name__ for t in self.terms if not supports_term(t)})
        return "no numba log-density for the covariance structure(s) " + ", ".join(kinds)

    @property
    def numba_logp_and_grad(self):
        """The numba-compiled density ``f(x, *numba_data) -> (logp, grad)``, equal to :meth:`logp_and_grad`.

        Present for gaussian identity, binomial logit, poisson log, negative_binomial log, gamma log and
        beta logit models when numba is importable (``AttributeError`` otherwise, so that
        ``getattr(model, "numba_logp_and_grad", None)`` is None).  Importing it loads numba and the
        kernel (compiled on first use, then cached on disk).

        Returns
        -------
        numba dispatcher
        """
        if not self._numba_ok():
            raise AttributeError(self._numba_missing())
        from ._numba_density import logp_and_grad

        return logp_and_grad

    @property
    def numba_data(self):
        """The arrays :attr:`numba_logp_and_grad` takes after ``x`` (built on first access).

        Returns
        -------
        tuple of ndarray
        """
        if not self._numba_ok():
            raise AttributeError(self._numba_missing())
        if self._numba_data is None:
            from ._numba_density import pack

            self._numba_data = pack(self)
        return self._numba_data

    def _loglik(self, eta, aux):
        """Σ log-likelihood, its gradient in η per row and in log aux (None without aux)."""
        y, wt = self.y, self.wt
        fam, link = self._kind
        if fam == "gaussian":
            r = y - eta
            wr = wt * r
            inv = 1.0 / (aux * aux)
            rss = float(r @ wr)
            ll = -0.5 * rss * inv - self.n * math.log(aux) - 0.5 * self.n * math.log(2 * math.pi)
            return ll, wr * inv, rss * inv - self.n
        if fam == "binomial":
            # wt [y η - log(1 + e^η)]
            ll = float(wt @ (y * eta - np.logaddexp(0.0, eta)))
            return ll, wt * (y - expit(eta)), None
        if fam == "poisson":
            mu = np.exp(eta)
            ll = float(wt @ (y * eta - mu))
            return ll, wt * (y - mu), None
        if fam == "negative_binomial":  # NB2, log link; lgamma(y + 1) left out
            th = aux
            mu = np.exp(eta)
            tm = th + mu
            ltm = np.log(tm)
            yt = y + th
            ll = float(wt @ (gammaln(yt) + y * eta - yt * ltm)) + self._sw * (th * math.log(th) - math.lgamma(th))
            d = float(wt @ (digamma(yt) - ltm - yt / tm)) + self._sw * (math.log(th) + 1.0 - float(digamma(th)))
            return ll, wt * th * (y - mu) / tm, th * d
        if fam == "gamma":  # log link
            a = aux
            ymu = y * np.exp(-eta)
            ll = float(wt @ (-a * eta + (a - 1.0) * self._logy - a * ymu)) + self._sw * (a * math.log(a) - math.lgamma(a))
            d = a * (float(wt @ (self._logy - eta - ymu)) + self._sw * (math.log(a) + 1.0 - float(digamma(a))))
            return ll, wt * a * (ymu - 1.0), d
        if fam == "beta":  # logit link
            phi = aux
            mu = expit(eta)
            am, bm = mu * phi, (1.0 - mu) * phi
            ly, l1y = self._logy, self._log1my
            ll = float(wt @ ((am - 1.0) * ly + (bm - 1.0) * l1y - gammaln(am) - gammaln(bm))) + self._sw * math.lgamma(phi)
            da, db = digamma(am), digamma(bm)
            s = wt * phi * (db - da + ly - l1y) * mu * (1.0 - mu)
            d = phi * (float(wt @ (mu * (ly - da) + (1.0 - mu) * (l1y - db))) + self._sw * float(digamma(phi)))
            return ll, s, d
        # any other family or link: the family object's μ-derivatives through the link
        lk = self._link
        mu = lk.inverse(eta)
        dmu = lk.mu_eta(eta)
        fobj = self.family
        if self.family_name in ("binomial", "poisson"):
            with np.errstate(divide="ignore", invalid="ignore"):
                ll = float(np.sum(fobj.loglik_kernel(y, mu, wt)))
                s = wt * (y - mu) / fobj.variance(mu) * dmu
            return ll, s, None
        f, f1, _, _, psi = fobj.mu_derivatives(y, mu, wt, {self.family_param: aux})
        ll = float(np.sum(f))
        return ll, f1 * dmu, float(np.sum(psi[self.family_param][0]))

    def logp(self, x) -> float:
        """The log posterior density alone.

        Parameters
        ----------
        x : ndarray, shape (dim,)
            A point in the unconstrained space.

        Returns
        -------
        float
        """
        return self.logp_and_grad(x)[0]

    # ------------------------------------------------------------------ starting points and results
    def initial_point(self, rng=None):
        """A random starting point: rstanarm's uniform(-2, 2) jitter on the scale parameters and z, the intercept
        at the link of the mean response and the coefficients near 0.

        Parameters
        ----------
        rng : numpy.random.Generator or int, optional
            Random generator (or seed).

        Returns
        -------
        ndarray, shape (dim,)
        """
        rng = np.random.default_rng(rng)
        spread = 1.0
        for _ in range(60):  # shrink the jitter until the density is finite (μ = 1/η must stay positive, ...)
            x = self._jittered(rng, spread)
            if np.isfinite(self.logp(x)):
                return x
            spread *= 0.5
        raise ArgumentError("no starting point with a finite log-density was found near the prior's centre; "
                            "check the response against the family and link")

    def _jittered(self, rng, spread):
        x = np.zeros(self.dim)
        x[:self.p] = rng.uniform(-0.1, 0.1, self.p) * spread
        if self.has_intercept:
            ybar = float(np.sum(self.wt * self.y) / np.sum(self.wt))
            if self.family_name in ("binomial", "beta"):
                ybar = min(max(ybar, 0.02), 0.98)
            elif self.family_name != "gaussian":
                ybar = max(ybar, 0.05)
            x[self.icpt] = float(self._link.link(np.array([ybar]))[0]) if self._link is not None else ybar
            x[self.icpt] += rng.uniform(-0.1, 0.1) * spread * (self._sd_y if self.family_name == "gaussian" else 1.0)
        if self.aux_i is not None:
            base = math.log(self._sd_y) if self.family_name == "gaussian" else 0.0
            x[self.aux_i] = base + rng.uniform(-0.5, 0.5)
        for t in self.terms:
            x[t.par] = rng.uniform(-1.0, 1.0, t.n_par)
            shrink = 0.0 if spread == 1.0 else math.log(spread)
            if t.struct is None:
                x[t.par.start] = rng.uniform(-1.5, 0.0) + shrink
                continue
            st = t.struct
            x[t.par.start:t.par.start + st.n_sd] = rng.uniform(-1.5, 0.0, st.n_sd) + shrink
            for j, (nm, kind, *_rest) in enumerate(st.params[st.n_sd:]):
                if kind == "range":  # around the median distance between positions (the frequentist start)
                    x[t.par.start + st.n_sd + j] = math.log(st.cs._scale) + rng.uniform(-0.5, 0.5)
                elif kind == "kappa":
                    x[t.par.start + st.n_sd + j] = rng.uniform(-0.5, 0.5)
        x[self.z_all] = rng.uniform(-1.0, 1.0, self.z_all.stop - self.z_all.start) * spread
        return x

    @property
    def fixef_names(self) -> list:
        """The fixed effects' names (model-matrix columns).

        Returns
        -------
        list of str
        """
        return list(self.x_names)

    def param_names(self, ranef: bool = False) -> list:
        """Names of :meth:`unpack`'s quantities, in its order.

        Parameters
        ----------
        ranef : bool, default False
            Include the random effects ``b[(Intercept) herd:1]``.

        Returns
        -------
        list of str
        """
        return list(self._unpack_arrays(np.zeros((1, self.dim)), ranef).keys())

    def unpack(self, x, ranef: bool = False) -> dict:
        """The constrained quantities at ``x`` under lme4's names.

        Parameters
        ----------
        x : ndarray, shape (dim,)
            A point in the unconstrained space.
        ranef : bool, default False
            Add every random effect as ``b[<column> <group>:<level>]`` (rstanarm's names).

        Returns
        -------
        dict
            Fixed effects (the intercept uncentred), per term ``sd_<col>|<group>`` and
            ``cor_<row>.<col>|<group>`` (lme4's order; a structured term its natural parameters:
            ``sd|g`` or ``sd_<col>|g``, then ``rho|g``, ``rho1|g`` .., ``range|g``, ``kappa|g``), then
            ``sigma`` (gaussian) or the family's parameter (``theta``, ``shape``, ``phi``), then the
            random effects when asked (a ``relmat`` term's per level of its factor, b = L b*).
        """
        x = np.asarray(x, dtype=float)
        return {k: float(v[0]) for k, v in self._unpack_arrays(x[None, :], ranef).items()}

    def unpack_draws(self, xs, ranef: bool = False):
        """:meth:`unpack` of many points, as a DataFrame (one row per point), vectorised over the points.

        Parameters
        ----------
        xs : ndarray, shape (m, dim)
            Points in the unconstrained space (draws).
        ranef : bool, default False
            Include the random effects.

        Returns
        -------
        pandas.DataFrame
            Columns :meth:`param_names`.
        """
        import pandas as pd

        xs = np.atleast_2d(np.asarray(xs, dtype=float))
        if xs.shape[1] != self.dim:
            raise ArgumentError(f"xs has {xs.shape[1]} columns; the model's unconstrained vector has {self.dim}")
        out = self._unpack_arrays(xs, ranef)
        return pd.DataFrame(out, columns=list(out))

    def _unpack_arrays(self, xs, ranef):
        m = xs.shape[0]
        beta = xs[:, : self.p].copy()
        if self.has_intercept:
            beta[:, self.icpt] -= beta @ self.xbar
        out = {name: beta[:, j] for j, name in enumerate(self.x_names)}
        aux = np.exp(xs[:, self.aux_i]) if self.aux_i is not None else None
        mult = aux if aux is not None else np.ones(m)
        for t in self.terms:
            if t.struct is not None:
                # the label (the factor's name for its first term) keeps two structured terms on a factor apart
                out.update(t.struct.natural_draws(xs[:, t.par], mult, t.label))
                continue
            T = self._term_factors(t, xs[:, t.par]) * mult[:, None, None]
            S = np.einsum("mij,mkj->mik", T, T)
            sd = np.sqrt(np.einsum("mii->mi", S))
            for c in range(t.K):
                for r in range(c, t.K):
                    if r == c:
                        out[f"sd_{t.names[c]}|{t.group}"] = sd[:, c]
                    else:
                        out[f"cor_{t.names[r]}.{t.names[c]}|{t.group}"] = S[:, r, c] / (sd[:, r] * sd[:, c])
        if aux is not None:
            out[self.family_param] = aux
        if ranef:
            for t in self.terms:
                B = self.term_effects(t, xs, mult)
                if t.struct is not None and t.struct.relmat_L is not None:
                    Bl = B[:, 0, :] @ t.struct.relmat_L.T  # the factor's levels: b = L b*
                    for g, lev in enumerate(t.names):
                        out[f"b[(Intercept) {t.group}:{lev}]"] = Bl[:, g]
                    continue
                for g, lev in enumerate(t.levels):
                    for k, c in enumerate(t.names):
                        out[f"b[{c} {t.group}:{lev}]"] = B[:, g, k]
        return out

    def term_effects(self, t: _Term, xs, mult):
        """One term's random effects b (per draw, level and column) at many points.

        Parameters
        ----------
        t : _Term
            One of :attr:`terms`.
        xs : ndarray, shape (m, dim)
            Points in the unconstrained space.
        mult : ndarray, shape (m,)
            The family's auxiliary parameter per point (ones without one).

        Returns
        -------
        ndarray, shape (m, q, K)
            b_g = aux · T z_g (a relmat term: its one level's q effects b*, before L).
        """
        m = xs.shape[0]
        Zs = xs[:, t.z].reshape(m, t.q, t.K)
        if t.struct is not None and t.struct.diagonal:
            return Zs * (t.struct.diag_scale(xs[:, t.par]) * mult[:, None])[:, None, :]
        T = self._term_factors(t, xs[:, t.par]) * mult[:, None, None]
        return np.einsum("mgk,mjk->mgj", Zs, T)

    def term_row_variance(self, t: _Term, cols, xs, mult):
        """Per point and row, the variance c_i' Σ c_i the term adds to the linear predictor.

        Parameters
        ----------
        t : _Term
            One of :attr:`terms`.
        cols : ndarray, shape (n, K)
            The term's columns on the rows.
        xs : ndarray, shape (m, dim)
            Points in the unconstrained space.
        mult : ndarray, shape (m,)
            The family's auxiliary parameter per point.

        Returns
        -------
        ndarray, shape (m, n)
        """
        if t.struct is not None and t.struct.diagonal:
            d = t.struct.diag_scale(xs[:, t.par]) * mult[:, None]
            return (d * d) @ (cols * cols).T
        T = self._term_factors(t, xs[:, t.par]) * mult[:, None, None]
        CT = np.einsum("ik,dkl->dil", cols, T)
        return np.einsum("dil,dil->di", CT, CT)

    @staticmethod
    def _term_factors(t: _Term, U):
        """T = diag(sd) L of one term for many points at once: U (m, n_par) -> (m, K, K)."""
        m, K = U.shape[0], t.K
        if t.struct is not None:
            return np.stack([t.struct.template(u) for u in U]) if m else np.zeros((0, K, K))
        tau = np.exp(U[:, 0])
        if K == 1:
            return tau[:, None, None].copy()
        y = np.zeros((m, K))
        y[:, :-1] = U[:, 1:K]
        e = np.exp(y - y.max(axis=1, keepdims=True))
        pi = e / e.sum(axis=1, keepdims=True)
        sd = tau[:, None] * np.sqrt(K * pi)
        Z = np.zeros((m, K, K))
        Z[:, t.il, t.jl] = np.tanh(U[:, K:])
        L = np.zeros((m, K, K))
        for i in range(K):  # rows of the Cholesky factor of the correlation matrix, from partial correlations
            rem = np.ones(m)
            for j in range(i):
                L[:, i, j] = Z[:, i, j] * np.sqrt(rem)
                rem = rem * (1.0 - Z[:, i, j] ** 2)
            L[:, i, i] = np.sqrt(rem)
        return sd[:, :, None] * L

    def prior_summary(self, model_name: str = "fit") -> str:
        """rstanarm's ``prior_summary()`` text for this model's priors.

        Parameters
        ----------
        model_name : str, default "fit"
            The name the header gives the model (rstanarm prints the fit's variable name).

        Returns
        -------
        str
        """
        return self.prior_set.summary(model_name)
