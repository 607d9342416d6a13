import re

import numpy as np

import pytest

from glmmkit import FormulaError
from glmmkit.formula import parse_formula


def test_bars_and_fixed_part():
    p = parse_formula("Reaction ~ Days + (Days | Subject)")
    assert p.response == "Reaction" and p.fixed_rhs == "Days"
    (t,) = p.random
    assert t.lhs == "Days" and t.factors == ("Subject",) and t.correlated


def test_double_bar_is_uncorrelated():
    (t,) = parse_formula("y ~ x + (x || g)").random
    assert not t.correlated


def test_nesting_expands_like_lme4():
    p = parse_formula("w ~ t + (1 | room/pen/pig)")
    assert [t.factors for t in p.random] == [("room",), ("pen", "room"), ("pig", "pen", "room")]
    assert [t.group_name for t in p.random] == ["room", "pen:room", "pig:pen:room"]


def test_interaction_grouping_and_crossed():
    p = parse_formula("y ~ 1 + (1 | a:b) + (0 + x | c)")
    assert p.random[0].factors == ("a", "b")
    assert p.random[1].lhs == "0 + x" and p.fixed_rhs == "1"


def test_only_random_part_gives_intercept():
    assert parse_formula("y ~ (1 | g)").fixed_rhs == "1"


def test_offsets_are_extracted_and_minus_terms_kept():
    p = parse_formula("y ~ x + offset(log(t)) - 1 + (1 | g)")
    assert p.offsets == ("log(t)",)
    assert p.fixed_rhs == "x - 1"


def test_r_power_inside_calls_becomes_python_power():
    p = parse_formula("y ~ I(x^2) + (a + b)^2 + (1 | g)")
    assert "I(x**2)" in p.fixed_rhs and "(a + b)^2" in p.fixed_rhs


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("y ~ x + (1 | g", "unbalanced '('"),
        ("y ~ x + 1 | g)", "unbalanced ')'"),
        ("y ~ x + x | g", "not a random-effects term"),
        ("y x + (1 | g)", "exactly one '~'"),
        ("~ x + (1 | g)", "no response"),
        ("y ~ x + ( | g)", "nothing before '|'"),
        ("y ~ x + (1 | )", "no grouping factor"),
        ("y ~ x ++ (1 | g)", "empty term"),
    ],
)
def test_errors_name_the_problem(bad, fragment):
    with pytest.raises(FormulaError, match=re.escape(fragment)):
        parse_formula(bad)  # noqa: B018


def test_not_a_string():
    with pytest.raises(FormulaError):
        parse_formula(42)


def test_factor_and_as_factor_make_numeric_codes_categorical():
    """R's factor(x) / as.factor(x): a CSV stores factor codes as numbers; the names follow R's."""
    import glmmkit as gk

    cbpp = gk.datasets.load("cbpp")
    coded = cbpp.assign(period=cbpp["period"].astype(int))
    ref = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    for call in ("factor", "as.factor"):
        fit = gk.glmer(f"cbind(incidence, size - incidence) ~ {call}(period) + (1 | herd)", coded, family="binomial")
        assert list(fit.fixef.index) == ["(Intercept)", "factor(period)2", "factor(period)3", "factor(period)4"]
        assert fit.loglik == pytest.approx(ref.loglik, abs=1e-8)
        assert np.allclose(fit.predict(coded.head(4)), ref.predict(cbpp.head(4)))
