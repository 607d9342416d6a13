"""Link functions g: μ = g⁻¹(η), with dμ/dη for IRLS weights.

Each link clips η or μ where R does, so that extreme linear predictors never
produce μ of exactly 0 or 1 (binomial) or 0 (Poisson).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..exceptions import ArgumentError

__all__ = ["Link", "get_link", "LINKS"]

_EPS = np.finfo(float).eps
_THRESH = 30.0  # R's logit clip: exp(±30) keeps μ away from 0 and 1


class Link:
    """A link function g: η = g(μ), μ = g⁻¹(η), with the derivatives IRLS and the Laplace gradient need.

    Subclasses clip η or μ where R does, so extreme linear predictors never give a μ of exactly
    0 or 1 (binomial) or 0 (Poisson).

    Attributes
    ----------
    name : str
        The link's name, as ``get_link`` and the families' ``link=`` accept it.
    """

    name = ""

    def link(self, mu):
        """The link η = g(μ).

        Parameters
        ----------
        mu : float or numpy.ndarray
            Means on the response scale.

        Returns
        -------
        numpy.ndarray or float
            The linear predictor η, the shape of ``mu``.
        """
        raise NotImplementedError

    def inverse(self, eta):
        """The inverse link μ = g⁻¹(η), clipped where R clips it.

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray or float
            The means μ, the shape of ``eta``.
        """
        raise NotImplementedError

    def mu_eta(self, eta):
        """dμ/dη, floored away from 0 where R floors it (the IRLS weights divide by it).

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray or float
            dμ/dη per entry of ``eta``.
        """
        raise NotImplementedError

    def mu_eta_derivatives(self, eta):
        """The first three derivatives of μ in η, unclipped.

        The chain rule of the exact Laplace gradient for families with their own parameters
        (``ParametricFamily.eta_derivatives``) uses them.

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        tuple of numpy.ndarray
            (dμ/dη, d²μ/dη², d³μ/dη³), each the shape of ``eta``.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"Link({self.name!r})"


class Logit(Link):
    """Logit link η = log(μ / (1 - μ)), the canonical link of the binomial family.

    Attributes
    ----------
    name : str
        ``"logit"``, the name ``get_link`` and ``family(link=...)`` accept.
    """
    name = "logit"

    def link(self, mu):
        """η = log(μ / (1 - μ)).

        Parameters
        ----------
        mu : float or numpy.ndarray
            Means, μ in (0, 1).

        Returns
        -------
        numpy.ndarray or float
            The linear predictor η, the shape of ``mu``.
        """
        return special.logit(mu)

    def inverse(self, eta):
        """μ = g⁻¹(η) = 1 / (1 + exp(-η)), with η clipped to [-30, 30] (R's clip) so μ never reaches 0 or 1.

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray or float
            The means μ, the shape of ``eta``.
        """
        return special.expit(np.clip(eta, -_THRESH, _THRESH))

    def mu_eta(self, eta):
        """dμ/dη = μ (1 - μ), floored at machine epsilon.

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray or float
            dμ/dη per entry of ``eta`` (the IRLS weights' factor).
        """
        mu = self.inverse(eta)
        return np.maximum(mu * (1.0 - mu), _EPS)

    def mu_eta_derivatives(self, eta):
        """The first three derivatives of μ in η, unclipped: μ(1-μ), μ(1-μ)(1-2μ) and μ(1-μ)(1-6μ(1-μ)).

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        tuple of numpy.ndarray
            (dμ/dη, d²μ/dη², d³μ/dη³), each the shape of ``eta``.
        """
        mu = self.inverse(eta)
        v = mu * (1.0 - mu)
        return v, v * (1.0 - 2.0 * mu), v * (1.0 - 6.0 * v)


class Probit(Link):
    """Probit link η = Φ⁻¹(μ), the standard normal quantile.

    Attributes
    ----------
    name : str
        ``"probit"``, the name ``get_link`` and ``family(link=...)`` accept.
    """
    name = "probit"

    def link(self, mu):
        """η = Φ⁻¹(μ).

        Parameters
        ----------
        mu : float or numpy.ndarray
            Means, μ in (0, 1).

        Returns
        -------
        numpy.ndarray or float
            The linear predictor η, the shape of ``mu``.
        """
        return special.ndtri(mu)

    def inverse(self, eta):
        """μ = g⁻¹(η) = Φ(η), with η clipped to ±Φ⁻¹(1 - ε) so μ stays within machine epsilon of (0, 1).

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray or float
            The means μ, the shape of ``eta``.
        """
        t = -special.ndtri(_EPS)
        return special.ndtr(np.clip(eta, -t, t))

    def mu_eta(self, eta):
        """dμ/dη = the normal density φ(η), floored at machine epsilon.

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray or float
            dμ/dη per entry of ``eta`` (the IRLS weights' factor).
        """
        return np.maximum(np.exp(-0.5 * eta * eta) / np.sqrt(2.0 * np.pi), _EPS)

    def mu_eta_derivatives(self, eta):
        """The first three derivatives of μ in η, unclipped: φ(η), -η φ(η) and (η² - 1) φ(η).

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        tuple of numpy.ndarray
            (dμ/dη, d²μ/dη², d³μ/dη³), each the shape of ``eta``.
        """
        d = np.exp(-0.5 * eta * eta) / np.sqrt(2.0 * np.pi)
        return d, -eta * d, (eta * eta - 1.0) * d


class Cloglog(Link):
    """Complementary log-log link η = log(-log(1 - μ)).

    Attributes
    ----------
    name : str
        ``"cloglog"``, the name ``get_link`` and ``family(link=...)`` accept.
    """
    name = "cloglog"

    def link(self, mu):
        """η = log(-log(1 - μ)).

        Parameters
        ----------
        mu : float or numpy.ndarray
            Means, μ in (0, 1).

        Returns
        -------
        numpy.ndarray or float
            The linear predictor η, the shape of ``mu``.
        """
        return np.log(-np.log1p(-mu))

    def inverse(self, eta):
        """μ = g⁻¹(η) = 1 - exp(-exp(η)), η capped at 700 and μ clipped to [ε, 1 - ε].

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray or float
            The means μ, the shape of ``eta``.
        """
        return np.clip(-np.expm1(-np.exp(np.minimum(eta, 700.0))), _EPS, 1.0 - _EPS)

    def mu_eta(self, eta):
        """dμ/dη = exp(η - exp(η)), floored at machine epsilon.

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray or float
            dμ/dη per entry of ``eta`` (the IRLS weights' factor).
        """
        eta = np.minimum(eta, 700.0)
        return np.maximum(np.exp(eta - np.exp(eta)), _EPS)

    def mu_eta_derivatives(self, eta):
        """The first three derivatives of μ in η, unclipped.

        d = exp(η - e^η), d (1 - e^η) and d ((1 - e^η)² - e^η).

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        tuple of numpy.ndarray
            (dμ/dη, d²μ/dη², d³μ/dη³), each the shape of ``eta``.
        """
        e = np.exp(np.minimum(eta, 700.0))
        d = np.exp(np.minimum(eta, 700.0) - e)
        return d, d * (1.0 - e), d * ((1.0 - e) ** 2 - e)


class Cauchit(Link):
    """Cauchit link η = tan(π (μ - ½)), the Cauchy quantile.

    Attributes
    ----------
    name : str
        ``"cauchit"``, the name ``get_link`` and ``family(link=...)`` accept.
    """
    name = "cauchit"

    def link(self, mu):
        """η = tan(π (μ - ½)).

        Parameters
        ----------
        mu : float or numpy.ndarray
            Means, μ in (0, 1).

        Returns
        -------
        numpy.ndarray or float
            The linear predictor η, the shape of ``mu``.
        """
        return np.tan(np.pi * (mu - 0.5))

    def inverse(self, eta):
        """μ = g⁻¹(η) = ½ + arctan(η) / π, with η clipped so μ stays within machine epsilon of (0, 1).

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray or float
            The means μ, the shape of ``eta``.
        """
        t = -np.tan(np.pi * (_EPS - 0.5))
        return 0.5 + np.arctan(np.clip(eta, -t, t)) / np.pi

    def mu_eta(self, eta):
        """dμ/dη = 1 / (π (1 + η²)), floored at machine epsilon.

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray or float
            dμ/dη per entry of ``eta`` (the IRLS weights' factor).
        """
        return np.maximum(1.0 / (np.pi * (1.0 + eta * eta)), _EPS)

    def mu_eta_derivatives(self, eta):
        """The first three derivatives of μ in η, unclipped.

        1/(π q), -2η/(π q²) and (6η² - 2)/(π q³), with q = 1 + η².

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        tuple of numpy.ndarray
            (dμ/dη, d²μ/dη², d³μ/dη³), each the shape of ``eta``.
        """
        q = 1.0 + eta * eta
        return 1.0 / (np.pi * q), -2.0 * eta / (np.pi * q * q), (6.0 * eta * eta - 2.0) / (np.pi * q**3)


class Log(Link):
    """Log link η = log(μ), the canonical link of the Poisson family.

    Attributes
    ----------
    name : str
        ``"log"``, the name ``get_link`` and ``family(link=...)`` accept.
    """
    name = "log"

    def link(self, mu):
        """η = log(μ).

        Parameters
        ----------
        mu : float or numpy.ndarray
            Means, μ > 0.

        Returns
        -------
        numpy.ndarray or float
            The linear predictor η, the shape of ``mu``.
        """
        return np.log(mu)

    def inverse(self, eta):
        """μ = g⁻¹(η) = exp(η), η capped at 700 and μ floored at machine epsilon (never exactly 0).

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray or float
            The means μ, the shape of ``eta``.
        """
        return np.maximum(np.exp(np.minimum(eta, 700.0)), _EPS)

    def mu_eta(self, eta):
        """dμ/dη = exp(η) (= μ), with the same cap and floor.

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray or float
            dμ/dη per entry of ``eta`` (the IRLS weights' factor).
        """
        return np.maximum(np.exp(np.minimum(eta, 700.0)), _EPS)

    def mu_eta_derivatives(self, eta):
        """The first three derivatives of μ in η, unclipped: all three equal to μ = exp(η).

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        tuple of numpy.ndarray
            (dμ/dη, d²μ/dη², d³μ/dη³), each the shape of ``eta``.
        """
        mu = self.inverse(eta)
        return mu, mu, mu


class Identity(Link):
    """Identity link η = μ.

    Attributes
    ----------
    name : str
        ``"identity"``, the name ``get_link`` and ``family(link=...)`` accept.
    """
    name = "identity"

    def link(self, mu):
        """η = μ itself (as a float array).

        Parameters
        ----------
        mu : float or numpy.ndarray
            Means, any real μ.

        Returns
        -------
        numpy.ndarray or float
            The linear predictor η, the shape of ``mu``.
        """
        return np.asarray(mu, dtype=float)

    def inverse(self, eta):
        """μ = g⁻¹(η) = η itself (as a float array).

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray or float
            The means μ, the shape of ``eta``.
        """
        return np.asarray(eta, dtype=float)

    def mu_eta(self, eta):
        """dμ/dη = 1 everywhere.

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray or float
            dμ/dη per entry of ``eta`` (the IRLS weights' factor).
        """
        return np.ones_like(np.asarray(eta, dtype=float))

    def mu_eta_derivatives(self, eta):
        """The first three derivatives of μ in η, unclipped: 1, 0 and 0.

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        tuple of numpy.ndarray
            (dμ/dη, d²μ/dη², d³μ/dη³), each the shape of ``eta``.
        """
        one = np.ones_like(np.asarray(eta, dtype=float))
        return one, 0.0 * one, 0.0 * one


class Sqrt(Link):
    """Square-root link η = √μ (a Poisson alternative).

    Attributes
    ----------
    name : str
        ``"sqrt"``, the name ``get_link`` and ``family(link=...)`` accept.
    """
    name = "sqrt"

    def link(self, mu):
        """η = √μ.

        Parameters
        ----------
        mu : float or numpy.ndarray
            Means, μ >= 0.

        Returns
        -------
        numpy.ndarray or float
            The linear predictor η, the shape of ``mu``.
        """
        return np.sqrt(mu)

    def inverse(self, eta):
        """μ = g⁻¹(η) = η² (unclipped).

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray or float
            The means μ, the shape of ``eta``.
        """
        return eta * eta

    def mu_eta(self, eta):
        """dμ/dη = 2η.

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray or float
            dμ/dη per entry of ``eta`` (the IRLS weights' factor).
        """
        return 2.0 * eta

    def mu_eta_derivatives(self, eta):
        """The first three derivatives of μ in η, unclipped: 2η, 2 and 0.

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        tuple of numpy.ndarray
            (dμ/dη, d²μ/dη², d³μ/dη³), each the shape of ``eta``.
        """
        two = np.full_like(np.asarray(eta, dtype=float), 2.0)
        return 2.0 * eta, two, 0.0 * two


class Inverse(Link):
    """Inverse link η = 1 / μ, the canonical link of the Gamma family.

    Attributes
    ----------
    name : str
        ``"inverse"``, the name ``get_link`` and ``family(link=...)`` accept.
    """
    name = "inverse"

    def link(self, mu):
        """η = 1 / μ.

        Parameters
        ----------
        mu : float or numpy.ndarray
            Means, μ ≠ 0.

        Returns
        -------
        numpy.ndarray or float
            The linear predictor η, the shape of ``mu``.
        """
        return 1.0 / mu

    def inverse(self, eta):
        """μ = g⁻¹(η) = 1 / η (unclipped: η must not be 0).

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray or float
            The means μ, the shape of ``eta``.
        """
        return 1.0 / eta

    def mu_eta(self, eta):
        """dμ/dη = -1 / η².

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        numpy.ndarray or float
            dμ/dη per entry of ``eta`` (the IRLS weights' factor).
        """
        return -1.0 / (eta * eta)

    def mu_eta_derivatives(self, eta):
        """The first three derivatives of μ in η, unclipped: -1/η², 2/η³ and -6/η⁴.

        Parameters
        ----------
        eta : float or numpy.ndarray
            Linear predictor.

        Returns
        -------
        tuple of numpy.ndarray
            (dμ/dη, d²μ/dη², d³μ/dη³), each the shape of ``eta``.
        """
        e2 = eta * eta
        return -1.0 / e2, 2.0 / (e2 * eta), -6.0 / (e2 * e2)


LINKS = {cls.name: cls for cls in (Logit, Probit, Cloglog, Cauchit, Log, Identity, Sqrt, Inverse)}


def get_link(name) -> Link:
    """The link called ``name`` (or a Link instance, returned as is).

    Parameters
    ----------
    name : str or Link
        One of ``"logit"``, ``"probit"``, ``"cloglog"``, ``"cauchit"``, ``"log"``, ``"identity"``,
        ``"sqrt"``, ``"inverse"`` (case-insensitive), or a Link object.

    Returns
    -------
    Link
        A new object of the named link (or ``name`` itself when it is a Link).

    Raises
    ------
    ArgumentError
        An unknown name (with the closest known one suggested).
    """
    if isinstance(name, Link):
        return name
    key = str(name).lower()
    if key not in LINKS:
        import difflib

        close = difflib.get_close_matches(key, list(LINKS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ArgumentError(f"unknown link {name!r}{hint}; available: {', '.join(LINKS)}")
    return LINKS[key]()
