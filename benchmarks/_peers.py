"""Engines that the benchmarks time: Python packages in-process, lme4 through ``Rscript``.

Every engine turns one benchmark *case* (a dict with ``formula``, ``family`` and
``method``; see ``bench_lmm.py``) plus its data into an :class:`EngineResult`.
An engine that cannot run a case (package or R missing, model not supported,
fit error) gives a result whose ``reason`` says why; the tables print it as
``n/a (reason)``.

glmmkit itself is the :data:`GLMMKIT` engine, the base of every ratio. The
peers are only *called* here; none of their code is part of glmmkit.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

#: Environment variables that size the thread pools of BLAS/OpenMP libraries
#: (numpy, R) and of Rust's rayon (used by the ``glmm`` and ``mixedlm`` cores).
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "RAYON_NUM_THREADS",
)


def thread_env(threads: int) -> dict[str, str]:
    """Return the environment variables that pin every thread pool to `threads`."""
    return {name: str(threads) for name in THREAD_VARS}


class Unavailable(Exception):
    """An engine cannot run a case; ``str(exc)`` is the short reason for the table."""


@dataclass
class EngineResult:
    """Outcome of one engine on one case.

    Attributes
    ----------
    times : list of float
        Wall-clock seconds of the timed repetitions (warm-up excluded).
    loglik : float or None
        Log-likelihood of the last fit (the REML log-likelihood for REML fits).
    fixef : dict
        Fixed-effect estimates by the engine's own coefficient names.
    messages : list of str
        Warnings and messages raised by the warm-up fit.
    reason : str or None
        Short reason why the engine gave no result; None when it ran.
    detail : str or None
        Longer explanation (e.g. the error message) to print under the tables.
    """

    times: list[float] = field(default_factory=list)
    loglik: float | None = None
    fixef: dict[str, float] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    reason: str | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        """True when the engine produced a fit."""
        return self.reason is None

    @property
    def median(self) -> float | None:
        """Median of the timed repetitions, or None."""
        return statistics.median(self.times) if self.times else None

    @classmethod
    def unavailable(cls, reason: str, detail: str | None = None) -> EngineResult:
        """Build the result of an engine that did not run."""
        return cls(reason=reason, detail=detail)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (median included)."""
        return {
            "median_s": self.median,
            "times_s": self.times,
            "loglik": self.loglik,
            "fixef": self.fixef,
            "messages": self.messages,
            "reason": self.reason,
            "detail": self.detail,
        }


def _reml(case: dict) -> bool:
    """Return True for a REML case, False for ML (Gaussian cases only)."""
    if case["family"] != "gaussian":
        raise Unavailable(f"{case['family']} GLMM not wired for this engine")
    return case["method"] == "REML"


def _nagq(method: str) -> int:
    """Translate a GLMM method (``Laplace`` or ``nAGQ=k``) into a node count."""
    return 1 if method == "Laplace" else int(method.split("=", 1)[1])


_CBIND = re.compile(r"^\s*cbind\s*\((?P<args>.*)\)\s*~(?P<rhs>.*)$", re.DOTALL)


def split_cbind(formula: str) -> tuple[str, str, str] | None:
    """Split ``cbind(successes, failures) ~ rhs`` into its three parts.

    The two arguments may be expressions (``size - incidence``); they are
    split at the top-level comma. Returns None for any other response.
    """
    match = _CBIND.match(formula)
    if match is None:
        return None
    args, depth = match["args"], 0
    for i, char in enumerate(args):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            return args[:i].strip(), args[i + 1 :].strip(), match["rhs"].strip()
    raise Unavailable(f"cannot split cbind() arguments in {formula!r}")


def _fresh_column(data: pd.DataFrame, stem: str) -> str:
    """A column name starting with `stem` that `data` does not have yet."""
    name, k = stem, 1
    while name in data.columns:
        name, k = f"{stem}{k}", k + 1
    return name


def _counts(data: pd.DataFrame, expr: str) -> pd.Series:
    """Evaluate a cbind() argument (a column name or an arithmetic expression)."""
    return data[expr] if expr in data.columns else data.eval(expr)


# --------------------------------------------------------------------------
# Python engines
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PythonEngine:
    """A Python package fitted in-process.

    Attributes
    ----------
    name : str
        Column name in the tables.
    module : str
        Import name; ``distribution`` is its PyPI name (for the version).
    make_fit : callable
        ``make_fit(module, case, data)`` returns a zero-argument callable that
        fits the model once, or raises :class:`Unavailable`.
    loglik, fixef : callable
        Extract the log-likelihood (float) and the fixed effects (dict) from a fit.
    distribution : str
        PyPI distribution name, for :func:`importlib.metadata.version`.
    """

    name: str
    module: str
    make_fit: Callable[[Any, dict, pd.DataFrame], Callable[[], Any]]
    loglik: Callable[[Any], float]
    fixef: Callable[[Any], dict[str, float]]
    distribution: str

    def version(self) -> str | None:
        """Installed version; ``"unversioned"`` when importable but not installed
        (e.g. a source tree on ``sys.path``); None when not importable."""
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "unversioned" if importlib.util.find_spec(self.module) else None

    def run(self, case: dict, data: pd.DataFrame, repeats: int) -> EngineResult:
        """Warm up with one fit, then time `repeats` fits with ``time.perf_counter``.

        Parameters
        ----------
        case : dict
            Benchmark case (``formula``, ``family``, ``method``).
        data : pandas.DataFrame
            The case's data, factors as categoricals in R's level order.
        repeats : int
            Number of timed fits after the warm-up fit.

        Returns
        -------
        EngineResult
        """
        try:
            module = importlib.import_module(self.module)
        except ImportError as exc:
            found = importlib.util.find_spec(self.module) is not None
            reason = "import failed" if found else f"{self.distribution} not installed"
            return EngineResult.unavailable(reason, f"{self.name}: {exc}")
        try:
            fit_once = self.make_fit(module, case, data)
        except Unavailable as exc:
            return EngineResult.unavailable(str(exc))
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fit = fit_once()
        except Exception as exc:  # the peer's own error: report it, keep going
            return EngineResult.unavailable(
                f"fit failed: {type(exc).__name__}", f"{self.name}: {exc}"
            )
        times = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(repeats):
                start = time.perf_counter()
                fit = fit_once()
                times.append(time.perf_counter() - start)
        return EngineResult(
            times=times,
            loglik=float(self.loglik(fit)),
            fixef={str(k): float(v) for k, v in self.fixef(fit).items()},
            messages=sorted({str(w.message) for w in caught}),
        )


def _glmmkit_fit(module: Any, case: dict, data: pd.DataFrame) -> Callable[[], Any]:
    """``glmmkit.lmer(formula, data=df, reml=...)`` for Gaussian cases,
    ``glmmkit.glmer(formula, data=df, family=..., nagq=k)`` for the others."""
    formula = case["formula"]
    if case["family"] == "gaussian":
        reml = case["method"] == "REML"
        return lambda: module.lmer(formula, data=data, reml=reml)
    family, nagq = case["family"], _nagq(case["method"])
    return lambda: module.glmer(formula, data=data, family=family, nagq=nagq)


GLMMKIT = PythonEngine(
    name="glmmkit",
    module="glmmkit",
    distribution="glmmkit",
    make_fit=_glmmkit_fit,
    loglik=lambda fit: fit.loglik,
    fixef=lambda fit: fit.fixef.to_dict(),
)


def _glmm_fit(module: Any, case: dict, data: pd.DataFrame) -> Callable[[], Any]:
    """``glmm.fit(data, formula, reml=...)``, or ``family=``/``nagq=`` for a GLMM.

    Gaussian: Satterthwaite df are switched off and standard errors use lme4's
    RX-based formula (``wald_se="rx"``), so the timed call does what ``lmer()``
    does and no post-fit inference.

    GLMM: ``anova_test="Wald"`` (its default ``"auto"`` refits a Poisson mixed
    model once per reduced model for likelihood-ratio tables, which ``glmer()``
    does not do); ``wald_se="hessian"`` stays (its default), as ``glmer()`` also computes
    the finite-difference Hessian of (theta, beta) by default
    (``calc.derivs = TRUE``). glmm's ``cbind()`` takes two column names only,
    so an expression argument (``size - incidence``) becomes a data column
    before the timed calls.
    """
    formula = case["formula"]
    if case["family"] == "gaussian":
        reml = _reml(case)
        return lambda: module.fit(
            data, formula, reml=reml, satterthwaite=False, wald_se="rx"
        )
    parts = split_cbind(formula)
    if parts is not None:
        successes, failures, rhs = parts
        names = []
        for expr, stem in ((successes, "cbind_successes"), (failures, "cbind_failures")):
            if expr in data.columns:
                names.append(expr)
            else:
                names.append(_fresh_column(data, stem))
                data = data.assign(**{names[-1]: _counts(data, expr)})
        formula = f"cbind({names[0]}, {names[1]}) ~ {rhs}"
    family, nagq = case["family"], _nagq(case["method"])
    family = {"negative_binomial": "negativebinomial"}.get(family, family)  # glmm's name for NB2
    return lambda: module.fit(
        data, formula, family=family, nagq=nagq, wald_se="hessian", anova_test="Wald"
    )


def _glmm_fixef(fit: Any) -> dict[str, float]:
    return dict(zip(fit.names, fit.beta))


def _mixedlm_fit(module: Any, case: dict, data: pd.DataFrame) -> Callable[[], Any]:
    """``mixedlm.lmer(formula, data, REML=...)`` or
    ``mixedlm.glmer(formula, data, family=Binomial()|Poisson(), nAGQ=k)``,
    with the package defaults.

    mixedlm has no ``cbind()`` response: a binomial ``cbind(s, f)`` case is
    fitted as the proportion ``s / (s + f)`` with prior weights ``s + f`` (the
    same likelihood, as in R), both computed before the timed calls.
    """
    formula = case["formula"]
    if case["family"] == "gaussian":
        reml = _reml(case)
        return lambda: module.lmer(formula, data, REML=reml)
    families = {"binomial": "Binomial", "poisson": "Poisson"}
    if case["family"] not in families:
        raise Unavailable(f"{case['family']} family not wired for this engine")
    family = getattr(module.families, families[case["family"]])()
    nagq = _nagq(case["method"])
    weights = None
    parts = split_cbind(formula)
    if parts is not None:
        successes, failures, rhs = parts
        s, f = _counts(data, successes), _counts(data, failures)
        response = _fresh_column(data, "cbind_proportion")
        data = data.assign(**{response: s / (s + f)})
        weights = (s + f).to_numpy(dtype=float)
        formula = f"{response} ~ {rhs}"
    return lambda: module.glmer(formula, data, family=family, nAGQ=nagq, weights=weights)


GLMM = PythonEngine(
    name="glmm",
    module="glmm",
    distribution="glmm",
    make_fit=_glmm_fit,
    loglik=lambda fit: fit.loglik,
    fixef=_glmm_fixef,
)

MIXEDLM = PythonEngine(
    name="mixedlm",
    module="mixedlm",
    distribution="mixedlm",
    make_fit=_mixedlm_fit,
    loglik=lambda fit: fit.logLik().value,
    fixef=lambda fit: fit.fixef(),
)

#: Python peers, in table order.
PEERS = (GLMM, MIXEDLM)


# --------------------------------------------------------------------------
# lme4 through Rscript
# --------------------------------------------------------------------------

_R_PROBE = r"""
ok <- requireNamespace("lme4", quietly = TRUE)
cat("R\t", R.version.string, "\n", sep = "")
cat("LME4\t", if (ok) as.character(packageVersion("lme4")) else "", "\n", sep = "")
cat("BLAS\t", extSoftVersion()[["BLAS"]], "\n", sep = "")
cat("LAPACK\t", La_library(), "\n", sep = "")
"""

# Template of the per-case R script. The data are read and converted to
# factors before any timing; only the model-fitting call is timed.
_R_CASE = r"""
suppressPackageStartupMessages(library(lme4))
df <- read.csv({path}, colClasses = {col_classes}, check.names = FALSE)
{factors}
msgs <- character()
fit <- withCallingHandlers({call},
  warning = function(w) {{ msgs <<- c(msgs, conditionMessage(w)); invokeRestart("muffleWarning") }},
  message = function(m) {{ msgs <<- c(msgs, conditionMessage(m)); invokeRestart("muffleMessage") }})
times <- numeric({repeats})
for (i in seq_len({repeats})) {{
  t0 <- Sys.time()
  fit <- suppressMessages(suppressWarnings({call}))
  times[i] <- as.numeric(Sys.time()) - as.numeric(t0)
}}
cat("TIMES", sprintf("%.9g", times), sep = "\t"); cat("\n")
cat("LOGLIK\t", sprintf("%.17g", as.numeric(logLik(fit))), "\n", sep = "")
b <- fixef(fit)
if (is.list(b) && !is.null(b$cond)) b <- b$cond  # glmmTMB: the conditional model's coefficients
for (k in seq_along(b)) cat("FIXEF\t", names(b)[k], "\t", sprintf("%.17g", b[[k]]), "\n", sep = "")
for (m in unique(msgs)) cat("MSG\t", gsub("[\r\n\t]+", " ", m), "\n", sep = "")
"""


def _r_string(text: str) -> str:
    """Quote `text` as an R string literal (JSON escapes are valid in R)."""
    return json.dumps(text)


def _r_vector(items: list[str]) -> str:
    return "c(" + ", ".join(_r_string(str(x)) for x in items) + ")"


def r_call(case: dict) -> str:
    """The lme4 call of a case, on a data frame named ``df``.

    Gaussian cases use ``lmer(..., REML = )``; other families use
    ``glmer(..., family = <family>, nAGQ = k)`` with ``method`` either
    ``Laplace`` or ``nAGQ=k``.
    """
    if case.get("r_call"):  # a case whose R anchor is not lme4 (e.g. glmmTMB for NB2)
        return case["r_call"].format(formula=case["formula"])
    if case["family"] == "gaussian":
        reml = "TRUE" if case["method"] == "REML" else "FALSE"
        return f"lmer({case['formula']}, data = df, REML = {reml})"
    return (
        f"glmer({case['formula']}, data = df, family = {case['family']}, "
        f"nAGQ = {_nagq(case['method'])})"
    )


def _r_script(case: dict, csv_path: Path, data: pd.DataFrame, repeats: int) -> str:
    """Render the R script that loads `data` from `csv_path` and times the fit."""
    factor_lines = []
    col_classes = {}
    for name, col in data.items():
        if isinstance(col.dtype, pd.CategoricalDtype):
            col_classes[name] = "character"
            levels = _r_vector(list(col.cat.categories))
            ordered = "TRUE" if col.cat.ordered else "FALSE"
            ref = f"df[[{_r_string(name)}]]"
            factor_lines.append(
                f"{ref} <- factor({ref}, levels = {levels}, ordered = {ordered})"
            )
    classes = (
        "c(" + ", ".join(f"{_r_string(k)} = \"character\"" for k in col_classes) + ")"
        if col_classes
        else "NA"
    )
    return _R_CASE.format(
        path=_r_string(str(csv_path)),
        col_classes=classes,
        factors="\n".join(factor_lines),
        call=r_call(case),
        repeats=repeats,
    )


class Lme4Engine:
    """lme4 in a fresh ``Rscript`` process per case, thread pools pinned.

    Parameters
    ----------
    threads : int
        Value given to every variable of :data:`THREAD_VARS` in R's environment.
    timeout : float
        Seconds after which the R process of one case is killed.
    rscript : str
        Name or path of the ``Rscript`` executable.
    """

    name = "lme4"

    def __init__(self, threads: int = 1, timeout: float = 600.0, rscript: str = "Rscript"):
        self.threads = threads
        self.timeout = timeout
        self.rscript = shutil.which(rscript)
        self._info: dict[str, str] | None = None

    def _env(self) -> dict[str, str]:
        return {**os.environ, **thread_env(self.threads)}

    def info(self) -> dict[str, str]:
        """R version, lme4 version and BLAS/LAPACK libraries (empty when R is missing)."""
        if self._info is None:
            self._info = {}
            if self.rscript:
                proc = subprocess.run(
                    [self.rscript, "--vanilla", "-e", _R_PROBE],
                    capture_output=True, text=True, timeout=120, env=self._env(),
                )
                for line in proc.stdout.splitlines():
                    key, _, value = line.partition("\t")
                    self._info[key.lower()] = value.strip()
        return self._info

    def version(self) -> str | None:
        """lme4 version, or None when R or lme4 is missing."""
        return self.info().get("lme4") or None

    def run(self, case: dict, data: pd.DataFrame, repeats: int) -> EngineResult:
        """Fit the case once to warm up, then `repeats` times, all in one R session.

        Only the ``lmer``/``glmer`` call is timed (``Sys.time()`` differences);
        reading the data and building factors happen before.

        Parameters
        ----------
        case : dict
            Benchmark case (``formula``, ``family``, ``method``).
        data : pandas.DataFrame
            The case's data; categorical columns become R factors with the same
            levels (and ``ordered`` flag).
        repeats : int
            Number of timed fits after the warm-up fit.

        Returns
        -------
        EngineResult
        """
        if not self.rscript:
            return EngineResult.unavailable("R not installed")
        if not self.version():
            return EngineResult.unavailable("lme4 not installed")
        with tempfile.TemporaryDirectory(prefix="glmmkit-bench-") as tmp:
            csv_path = Path(tmp) / "data.csv"
            script = Path(tmp) / "fit.R"
            data.to_csv(csv_path, index=False)
            script.write_text(_r_script(case, csv_path, data, repeats))
            try:
                proc = subprocess.run(
                    [self.rscript, "--vanilla", str(script)],
                    capture_output=True, text=True, timeout=self.timeout, env=self._env(),
                )
            except subprocess.TimeoutExpired:
                return EngineResult.unavailable(f"timed out after {self.timeout:g} s")
        if proc.returncode != 0:
            return EngineResult.unavailable(
                "R error", f"lme4: {proc.stderr.strip()[-2000:]}"
            )
        return _parse_r_output(proc.stdout)


def _parse_r_output(stdout: str) -> EngineResult:
    """Read the TIMES/LOGLIK/FIXEF/MSG lines printed by the case script."""
    result = EngineResult()
    for line in stdout.splitlines():
        key, *fields = line.split("\t")
        if key == "TIMES":
            result.times = [float(x) for x in fields if x]
        elif key == "LOGLIK":
            result.loglik = float(fields[0])
        elif key == "FIXEF":
            result.fixef[fields[0]] = float(fields[1])
        elif key == "MSG":
            result.messages.append(fields[0])
    return result
