"""Families (response distributions) and links.  One module per family."""

from __future__ import annotations

import difflib

from ..exceptions import ArgumentError
from .base import Family
from .binomial import Binomial
from .links import LINKS, Link, get_link
from .poisson import Poisson

FAMILIES = {"binomial": Binomial, "poisson": Poisson}
_ALIASES = {"bernoulli": "binomial"}

__all__ = ["Family", "Binomial", "Poisson", "Link", "get_link", "get_family", "FAMILIES", "LINKS"]


def get_family(family, link=None) -> Family:
    """A family instance from a name (``"binomial"``), a class or an instance."""
    if isinstance(family, Family):
        if link is not None and get_link(link).name != family.link.name:
            return type(family)(link)
        return family
    if isinstance(family, type) and issubclass(family, Family):
        return family(link)
    key = str(family).lower()
    key = _ALIASES.get(key, key)
    if key not in FAMILIES:
        close = difflib.get_close_matches(key, list(FAMILIES) + ["gaussian"], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ArgumentError(f"unknown family {family!r}{hint}; available: gaussian, {', '.join(FAMILIES)}")
    return FAMILIES[key](link)
