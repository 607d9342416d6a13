"""Families (response distributions) and links.  One module per family."""

from __future__ import annotations

import difflib

from ..exceptions import ArgumentError
from .base import Family
from .beta import Beta
from .betabinomial import BetaBinomial
from .binomial import Binomial
from .gamma import Gamma
from .gaussian import Gaussian
from .inverse_gaussian import InverseGaussian
from .links import LINKS, Link, get_link
from .lognormal import LogNormal
from .negbin import NegativeBinomial1, NegativeBinomial2
from .parametric import ParametricFamily
from .poisson import Poisson
from .student_t import StudentT
from .tweedie import Tweedie
from .zero_models import Hurdle, Truncated, ZeroInflated, zero_model_family

FAMILIES = {
    "binomial": Binomial,
    "poisson": Poisson,
    "negative_binomial": NegativeBinomial2,
    "nbinom1": NegativeBinomial1,
    "gamma": Gamma,
    "inverse_gaussian": InverseGaussian,
    "beta": Beta,
    "student_t": StudentT,
    "gaussian": Gaussian,
    "betabinomial": BetaBinomial,
    "tweedie": Tweedie,
    "lognormal": LogNormal,
}
#: families made by wrapping another (zero-truncated counts): name -> (wrapper, base class)
WRAPPED = {
    "truncated_poisson": (Truncated, Poisson),
    "truncated_nbinom2": (Truncated, NegativeBinomial2),
    "truncated_nbinom1": (Truncated, NegativeBinomial1),
}
_ALIASES = {"zigamma": "gamma", "truncated_negative_binomial": "truncated_nbinom2", "bernoulli": "binomial", "nbinom2": "negative_binomial", "negbin": "negative_binomial",
            "nb2": "negative_binomial", "nb1": "nbinom1", "inverse.gaussian": "inverse_gaussian",
            "inverse_gaussian": "inverse_gaussian", "beta_family": "beta", "beta_binomial": "betabinomial", "t": "student_t", "normal": "gaussian"}

__all__ = ["Family", "ParametricFamily", "Binomial", "Poisson", "NegativeBinomial2", "NegativeBinomial1", "Gamma",
           "InverseGaussian", "Beta", "StudentT", "Gaussian", "BetaBinomial", "Tweedie", "LogNormal", "Truncated", "ZeroInflated", "Hurdle", "zero_model_family", "Link", "get_link", "get_family", "FAMILIES", "LINKS"]


def get_family(family, link=None, family_params=None) -> Family:
    """A new family object from a name (``"binomial"``), a class or an instance.

    An instance is never handed back itself: the caller gets a fresh object of its
    class with its link and fixed parameters, so that no two fits share a family.

    Parameters
    ----------
    family : str, Family subclass or Family instance
        A registered name (``"binomial"``, ``"poisson"``, ``"negative_binomial"``, ...), a
        ``Family`` class, or an instance whose class, link and fixed parameters are copied.
    link : str, optional
        The family's default link when omitted (an instance's own link).
    family_params : dict, optional
        Fixes parameters of a family that has them (``{"df": 4}`` for the
        Student-t); the others are estimated.

    Returns
    -------
    Family
    """
    if isinstance(family, Family):
        link = family.link.name if link is None else link
        if isinstance(family, ParametricFamily):
            return family.fresh(link, family_params)
        if family_params:
            raise ArgumentError(f"the {family.name} family has no parameters of its own; "
                                f"family_params={family_params!r} does not apply")
        return type(family)(link)
    if isinstance(family, type) and issubclass(family, Family):
        return family(link, family_params) if issubclass(family, ParametricFamily) else family(link)
    key = str(family).lower()
    key = _ALIASES.get(key, key)
    if key in WRAPPED:
        wrapper, base = WRAPPED[key]
        return wrapper(base(link, family_params) if issubclass(base, ParametricFamily) else base(link))
    if key not in FAMILIES:
        close = difflib.get_close_matches(key, list(FAMILIES) + list(WRAPPED) + list(_ALIASES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ArgumentError(f"unknown family {family!r}{hint}; available: {', '.join(list(FAMILIES) + list(WRAPPED))}"
                            + ("; zero inflation is a ziformula (glmer(..., family='poisson', ziformula='~ 1'))"
                               if key.startswith("zi") else ""))
    cls = FAMILIES[key]
    if issubclass(cls, ParametricFamily):
        return cls(link, family_params)
    if family_params:
        raise ArgumentError(f"the {cls.name} family has no parameters of its own; family_params={family_params!r} does not apply")
    return cls(link)
