"""Parse an lme4 model formula into its fixed part and its random-effect bars.

The fixed part is handed to formulaic unchanged (apart from ``offset()`` terms,
which formulaic does not know); the bar terms ``(lhs | group)`` and
``(lhs || group)`` are parsed here, nested grouping ``a/b/c`` is expanded into
``a``, ``b:a``, ``c:b:a`` as lme4 does.  Nothing here looks at data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ..exceptions import FormulaError

__all__ = ["RandomTermSpec", "ParsedFormula", "parse_formula"]


@dataclass(frozen=True)
class RandomTermSpec:
    """One random-effects bar after nesting expansion.

    Attributes
    ----------
    lhs : str
        The model formula of the random-effect columns, e.g. ``"1 + Days"``.
    factors : tuple of str
        Column names whose interaction forms the grouping factor, in naming order
        (``("pen", "room")`` is the factor ``pen:room``).
    correlated : bool
        False for ``||`` terms: every column gets its own variance, no correlations.
    source : str
        The bar as the user wrote it, for messages.
    structure : str or None
        The covariance structure's name for a structured term (``ar1(0 + f | g)`` -> ``"ar1"``,
        see ``covstruct.registry``); None for lme4's unstructured terms (``us(x | g)`` too).
    """

    lhs: str
    factors: tuple[str, ...]
    correlated: bool
    source: str
    structure: str | None = None

    @property
    def group_name(self) -> str:
        """Name of the grouping factor as lme4 prints it (``pen:room``).

        Returns
        -------
        str
            The factors joined by ``:``.
        """
        return ":".join(self.factors)


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into the pieces each later layer needs.

    Attributes
    ----------
    text : str
        The formula as given.
    response : str
        Left-hand side expression (may be ``cbind(s, f)`` for binomial models).
    fixed_rhs : str
        Right-hand side of the fixed part for formulaic, offsets removed
        (``"1"`` when only bars were given).
    offsets : tuple of str
        Expressions inside ``offset(...)`` terms.
    random : tuple of RandomTermSpec
        The random-effect terms, in the order written, nesting expanded.
    """

    text: str
    response: str
    fixed_rhs: str
    offsets: tuple[str, ...]
    random: tuple[RandomTermSpec, ...]

    @property
    def fixed_formula(self) -> str:
        """The fixed part as a two-sided formula string for formulaic.

        Returns
        -------
        str
            ``"<response> ~ <fixed_rhs>"`` (offsets and random terms removed).
        """
        return f"{self.response} ~ {self.fixed_rhs}"


def _split_top_level(text: str, sep: str, formula: str, offset: int = 0) -> list[tuple[str, int]]:
    """Split ``text`` at ``sep`` characters outside parentheses and backticks.

    Returns the pieces with their start position in ``text`` (plus ``offset``),
    so that error messages can point into the formula.
    """
    pieces, depth, start, in_tick = [], 0, 0, False
    for i, ch in enumerate(text):
        if ch == "`":
            in_tick = not in_tick
        elif in_tick:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise FormulaError(
                    f"unbalanced ')' at position {offset + i + 1} of formula {formula!r}: "
                    "remove it or add the matching '('"
                )
        elif ch == sep and depth == 0:
            pieces.append((text[start:i], offset + start))
            start = i + 1
    if in_tick:
        raise FormulaError(f"unclosed backtick in formula {formula!r}")
    if depth > 0:
        raise FormulaError(
            f"unbalanced '(' in formula {formula!r}: {depth} parenthesis not closed; add ')'"
        )
    pieces.append((text[start:], offset + start))
    return pieces


_BAR = re.compile(r"^\((.*)\)$", re.S)
_STRUCTURED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)$", re.S)
_OFFSET = re.compile(r"^offset\((.*)\)$", re.S)


def _find_bar(inner: str) -> tuple[int, int] | None:
    """Position and width (1 or 2) of the top-level ``|``/``||`` inside a bar term."""
    depth, in_tick = 0, False
    for i, ch in enumerate(inner):
        if ch == "`":
            in_tick = not in_tick
        elif in_tick:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            width = 2 if inner[i + 1 : i + 2] == "|" else 1
            return i, width
    return None


class _STRUCTURED_INNER:
    """A match-like view of a structured term's inside (``group(1)``), as ``_BAR`` gives for bars."""

    def __init__(self, m):
        self._inner = m.group(2)

    def group(self, i):
        return self._inner


def _check_structure(name: str, width: int, piece: str) -> None:
    from ..covstruct.registry import STRUCTURE_NAMES, suggest_structure

    if name not in STRUCTURE_NAMES:
        raise FormulaError(f"unknown covariance structure {name!r} in {piece}{suggest_structure(name)}; "
                           f"known: {', '.join(STRUCTURE_NAMES)}")
    if width == 2:
        raise FormulaError(f"{piece}: a structured term takes a single '|' ({name}(x | g)); "
                           "diag(x | g) is the uncorrelated one")


def _strip_ticks(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == "`" and name[-1] == "`":
        return name[1:-1]
    return name


def _parse_grouping(text: str, source: str) -> list[tuple[str, ...]]:
    """Expand a grouping expression into factor tuples (``a/b`` -> ``a``, ``b:a``)."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    if not text:
        raise FormulaError(f"random-effects term {source} has no grouping factor after '|'")
    nest_parts = [p.strip() for p, _ in _split_top_level(text, "/", source)]
    if any(not p for p in nest_parts):
        raise FormulaError(f"empty level in nested grouping {text!r} of term {source}")
    groups: list[tuple[str, ...]] = []
    outer: tuple[str, ...] = ()
    for part in nest_parts:
        comps = tuple(_strip_ticks(c) for c, _ in _split_top_level(part, ":", source))
        if any(not c for c in comps):
            raise FormulaError(f"empty factor name in grouping {part!r} of term {source}")
        for c in comps:
            if any(ch in c for ch in "()+*|") and not part.strip().startswith("`"):
                raise FormulaError(
                    f"grouping factor {c!r} in term {source} must be a column name "
                    "(or an interaction a:b, or nesting a/b); compute it as a column first"
                )
        # lme4 names the nested factor inner:outer, e.g. pen:room for room/pen
        outer = comps + outer
        groups.append(outer)
    return groups


_R_AS_FACTOR = re.compile(r"(?<![A-Za-z0-9_.`])as\.factor\(")


def _python_powers(text: str) -> str:
    """R's ``^`` inside a function call (``I(x^2)``, ``log(x^2)``) is Python's ``**``.

    At formula level ``^`` keeps formulaic's (and R's) meaning: ``(a + b)^2`` is
    the interactions up to second order.
    """
    text = _R_AS_FACTOR.sub("factor(", text)
    out, stack, in_tick = [], [], False
    for i, ch in enumerate(text):
        if ch == "`":
            in_tick = not in_tick
        elif not in_tick:
            if ch == "(":
                j = len(out) - 1
                while j >= 0 and out[j] == " ":
                    j -= 1
                stack.append(j >= 0 and (out[j].isalnum() or out[j] in "._"))  # a call, not grouping
            elif ch == ")":
                if stack:
                    stack.pop()
            elif ch == "^" and any(stack):
                out.append("**")
                continue
        out.append(ch)
    return "".join(out)


@lru_cache(maxsize=256)
def parse_formula(formula: str) -> ParsedFormula:
    """Parse an lme4-style formula.

    Parameters
    ----------
    formula : str
        E.g. ``"Reaction ~ Days + (Days | Subject)"``.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    FormulaError
        With the position of the problem where there is one.
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string like 'y ~ x + (1 | g)', got {type(formula).__name__}")
    parts = _split_top_level(formula, "~", formula)
    if len(parts) != 2:
        raise FormulaError(
            f"formula {formula!r} needs exactly one '~' separating the response from the "
            f"predictors (found {len(parts) - 1})"
        )
    (lhs, _), (rhs, rhs_at) = parts
    lhs = lhs.strip()
    if not lhs:
        raise FormulaError(f"formula {formula!r} has no response on the left of '~'")
    if not rhs.strip():
        raise FormulaError(f"formula {formula!r} has nothing on the right of '~'")

    fixed, offsets, random = [], [], []
    for chunk, at in _split_top_level(rhs, "+", formula, rhs_at):
        piece = chunk.strip()
        if not piece:
            raise FormulaError(
                f"empty term at position {at + 1} of formula {formula!r} (a doubled or trailing '+')"
            )
        m = _BAR.match(piece)
        structure = None
        if m is None:  # a structured term: ar1(0 + f | g), cs(...), exp(x + y | g), ...
            ms = _STRUCTURED.match(piece)
            if ms and _find_bar(ms.group(2)) is not None:
                structure, m = ms.group(1), _STRUCTURED_INNER(ms)
        bar = _find_bar(m.group(1)) if m else None
        if m and bar is not None:
            inner = m.group(1)
            pos, width = bar
            term_lhs = inner[:pos].strip()
            if not term_lhs:
                raise FormulaError(
                    f"random-effects term {piece} at position {at + 1} has nothing before '|'; "
                    "write (1 | g) for a random intercept"
                )
            if structure is not None:
                _check_structure(structure, width, piece)
                if structure == "us":
                    structure = None
            for factors in _parse_grouping(inner[pos + width :], piece):
                random.append(RandomTermSpec(term_lhs, factors, width == 1, piece, structure))
            continue
        if "|" in piece and "`" not in piece:
            raise FormulaError(
                f"term {piece!r} at position {at + 1} of formula {formula!r} contains '|' "
                "but is not a random-effects term; write it in parentheses: (x | g)"
            )
        # a '+' chunk may still hold subtractions ("x - 1"); offsets are only ever added
        kept = []
        for k, (sub, _) in enumerate(_split_top_level(piece, "-", formula, at)):
            m = _OFFSET.match(sub.strip())
            if k == 0 and m:
                offsets.append(m.group(1).strip())
            elif k == 0:
                kept.append(sub.strip())
            else:
                kept.append("- " + sub.strip())
        text = " ".join(t for t in kept if t)
        if text:
            fixed.append(text)

    fixed_rhs = ""
    for piece in fixed:
        if not fixed_rhs:
            fixed_rhs = piece
        else:
            fixed_rhs += (" " if piece.startswith("-") else " + ") + piece
    fixed_rhs = _python_powers(fixed_rhs or "1")
    random = [RandomTermSpec(_python_powers(t.lhs), t.factors, t.correlated, t.source, t.structure)
              for t in random]
    offsets = [_python_powers(o) for o in offsets]
    return ParsedFormula(formula, _python_powers(lhs), fixed_rhs, tuple(offsets), tuple(random))
