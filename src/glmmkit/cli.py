"""Command line: ``glmmkit demo``, ``glmmkit fit``, ``glmmkit datasets``.

Every error on bad input prints one line (``glmmkit: error: ...``) naming what to
fix and exits with 2; warnings print as one ``glmmkit: warning: ...`` line each.
Nothing prints a traceback unless ``--traceback`` asks for it.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import datasets
from .exceptions import GlmmkitError

#: (data set, kind, formula, keyword arguments, what it shows)
DEMOS = [
    ("sleepstudy", "lmer", "Reaction ~ Days + (Days | Subject)", {},
     "reaction time over days of sleep deprivation, correlated random intercept and slope per subject"),
    ("Penicillin", "lmer", "diameter ~ 1 + (1 | plate) + (1 | sample)", {},
     "crossed random effects: plates x samples"),
    ("swine", "lmer", "weight ~ trt * week + (1 | room/pen/pig)", {},
     "seed 002's swine experiment: pigs nested in pens nested in rooms"),
    ("spinal", "glmer", "y ~ x + (1 | patient)", {"family": "binomial", "nagq": 25},
     "seed 000's spinal-implant study: conditional odds ratio of no pain after the implant (x = 1)"),
    ("hospital", "glmer", "infection ~ I(age - 60) + sex + teaching + (1 | hospital)", {"family": "binomial"},
     "seed 001's hospital registry: postoperative infection, patients nested in hospitals"),
    ("exacerbations", "glmer", "count ~ treated + smoker + offset(log(years)) + (1 | clinic)",
     {"family": "negative_binomial"}, "seed 001's overdispersed counts: negative binomial GLMM with exposure offset"),
]

FAMILIES = ["gaussian", "binomial", "poisson", "negative_binomial", "nbinom1", "gamma", "inverse_gaussian", "beta",
            "student_t"]


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that points at ``--help``."""

    def error(self, message):
        """Print the usage error as one line pointing at ``--help`` and exit with status 2.

        Parameters
        ----------
        message : str
            argparse's description of what was wrong.

        Returns
        -------
        NoReturn
            Raises SystemExit(2).
        """
        self.exit(2, f"glmmkit: error: {message} (see '{self.prog} --help')\n")


#: file types the command line reads, by suffix (anything not listed below is read as CSV)
READABLE = "CSV (.csv, .txt, .csv.gz), TSV (.tsv, .tab), Parquet (.parquet, .pq) or Feather (.feather, .arrow)"
#: types people try that are not tables of text: refused by name instead of read as garbled CSV
UNSUPPORTED = {".json": "JSON", ".jsonl": "JSON lines", ".xlsx": "Excel", ".xls": "Excel", ".xlsm": "Excel",
               ".ods": "OpenDocument spreadsheet", ".rds": "R (RDS)", ".rda": "R (RData)", ".rdata": "R (RData)",
               ".sav": "SPSS", ".dta": "Stata", ".sas7bdat": "SAS", ".h5": "HDF5", ".hdf5": "HDF5", ".pkl": "pickle",
               ".pickle": "pickle", ".zip": "zip archive", ".sqlite": "SQLite", ".db": "database"}
_EXPORT_HINT = {"Excel": "pandas.read_excel(path).to_csv('data.csv', index=False)",
                "JSON": "pandas.read_json(path).to_csv('data.csv', index=False)",
                "R (RDS)": "write.csv(readRDS(path), 'data.csv', row.names = FALSE) in R",
                "R (RData)": "write.csv(df, 'data.csv', row.names = FALSE) in R",
                "SPSS": "pandas.read_spss(path).to_csv('data.csv', index=False)",
                "Stata": "pandas.read_stata(path).to_csv('data.csv', index=False)"}


def _did_you_mean(name: str, choices) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` (case ignored), or an empty string.

    Parameters
    ----------
    name : str
        What the user typed.
    choices : iterable of str
        The valid names.

    Returns
    -------
    str
        The hint, with a leading space, or ``""`` when nothing is close.
    """
    import difflib

    choices = [str(c) for c in choices]
    lower = {c.lower(): c for c in choices}
    if name.lower() in lower and lower[name.lower()] != name:
        return f" (did you mean {lower[name.lower()]!r}?)"
    near = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.6)
    return f" (did you mean {lower[near[0]]!r}?)" if near else ""


def _read_table(path: str, sep=None, decimal: str = "."):
    import pandas as pd

    p = Path(path)
    if not p.exists():
        near = _did_you_mean(path, datasets.names())
        if not near and p.parent.is_dir():
            near = _did_you_mean(p.name, [f.name for f in p.parent.iterdir() if f.is_file()])
        raise GlmmkitError(f"data file {path!r} does not exist{near}; give a CSV, Parquet or Feather file, or a "
                           f"bundled data set name: {', '.join(datasets.names())}")
    if p.is_dir():
        raise GlmmkitError(f"data path {path!r} is a directory; give a CSV, Parquet or Feather file")
    suffix = p.suffix.lower()
    if suffix in UNSUPPORTED:
        kind = UNSUPPORTED[suffix]
        hint = _EXPORT_HINT.get(kind, "export it as CSV")
        raise GlmmkitError(f"{path!r} is a {kind} file ({suffix}), which glmmkit fit does not read; give a "
                           f"{READABLE} file: export it first, e.g. {hint}")
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if suffix in (".feather", ".arrow"):
            return pd.read_feather(p)
        if suffix in (".tsv", ".tab") and sep is None:
            return pd.read_csv(p, sep="\t", decimal=decimal)
        df = pd.read_csv(p, sep=sep if sep is not None else ",", decimal=decimal)
    except ImportError as exc:
        raise GlmmkitError(f"reading {suffix} files needs pyarrow, glmmkit's 'parquet' extra: "
                           f"pip install 'glmmkit[parquet]' ({exc})") from None
    except pd.errors.EmptyDataError:
        raise GlmmkitError(f"data file {path!r} is empty") from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GlmmkitError(f"cannot read {path!r} as {suffix or 'CSV'}: {first}") from None
    if sep is None and df.shape[1] == 1:
        only = str(df.columns[0])
        for other, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if other in only:
                shown = only if len(only) <= 80 else only[:77] + "..."
                opt = "'\\t'" if other == "\t" else repr(other)
                extra = " --decimal ','" if other == ";" else ""
                raise GlmmkitError(
                    f"{path!r} was read as one column named {shown!r}: its fields are separated by {name}, not "
                    f"commas (pandas sep={other!r}); rerun with --sep {opt}{extra}"
                    + (" (semicolon files from spreadsheets usually write decimal commas)" if other == ";" else ""))
    if decimal == ".":
        _check_decimal_commas(df, path)
    return df


def _check_decimal_commas(df, path: str) -> None:
    """Columns read as text whose every value is a number written with a decimal comma ("249,56"): name them
    and the option that reads them as numbers, instead of a later 'must be numeric' error."""
    text = [c for c in df.columns if df[c].dtype == object or str(df[c].dtype) in ("string", "str")]
    bad = []
    for c in text:
        vals = df[c].dropna().astype(str).str.strip()
        if len(vals) and vals.str.fullmatch(r"[-+]?\d*,\d+([eE][-+]?\d+)?|[-+]?\d+").all() \
                and vals.str.contains(",").any():
            bad.append(str(c))
    if bad:
        example = str(df[bad[0]].dropna().astype(str).iloc[0])
        raise GlmmkitError(f"{path!r}: column(s) {', '.join(map(repr, bad))} hold numbers with decimal commas "
                           f"(e.g. {example!r}) and were read as text; rerun with --decimal ','")


def _load_data(name: str, sep=None, decimal: str = "."):
    if name in datasets.names() and not Path(name).exists():
        return datasets.load(name)
    return _read_table(name, sep=sep, decimal=decimal)


def _check_writable(path: str) -> None:
    """Fail before the fit (one line, exit 2), not after it, when the report cannot be written."""
    import os

    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise GlmmkitError(f"--report {path!r} is a directory; give a file name such as report.html")
    if not parent.exists():
        raise GlmmkitError(f"cannot write the report to {path!r}: directory {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise GlmmkitError(f"cannot write the report to {path!r}: {str(parent)!r} is not a directory")
    if (p.exists() and not os.access(p, os.W_OK)) or (not p.exists() and not os.access(parent, os.W_OK | os.X_OK)):
        raise GlmmkitError(f"cannot write the report to {path!r}: permission denied")


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return float(v) if np.isfinite(v) else None  # JSON has no NaN/Inf
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, (str, int, bool)) or v is None:
        return v
    return str(v)


def fit_to_json(fit, confint=None) -> dict:
    """Everything a script needs from a fit, as plain JSON types (NaN and Inf become null).

    Parameters
    ----------
    fit : LmmFit or GlmmFit
        The fitted model.
    confint : pandas.DataFrame, optional
        Intervals computed by ``fit.confint`` (``attrs["method"]`` names the method): added under
        ``"confint"``.

    Returns
    -------
    dict
        Formula, data name, family and link, likelihood statistics, fixed-effect table, variance
        components, theta, convergence flags and optimiser information (and the intervals).
    """
    ct = fit.coef_table()
    doc = {
        "formula": fit.formula,
        "data": fit.data_name,
        "family": getattr(getattr(fit, "family", None), "name", "gaussian"),
        "link": getattr(fit, "link", "identity"),
        "method": fit.method,
        "nobs": fit.nobs,
        "ngroups": fit.ngroups,
        "loglik": fit.loglik,
        "aic": fit.aic,
        "bic": fit.bic,
        "deviance": getattr(fit, "deviance", None),
        "sigma": fit.sigma if fit.has_residual else None,
        "fixef": {name: {"estimate": r["estimate"], "std_error": r["std_error"], "statistic": r["statistic"],
                         "df": r["df"], "p_value": r["p_value"], "ci_lower": r["ci_lower"], "ci_upper": r["ci_upper"]}
                  for name, r in ct.iterrows()},
        "varcorr": fit.varcorr.to_dict(orient="records"),
        "theta": fit.theta.to_dict(),
        "converged": fit.converged,
        "singular": fit.singular,
        "optimizer_info": fit.optimizer_info.as_dict(),
    }
    if getattr(fit, "reml", False):
        doc["reml_criterion"] = fit.reml_criterion
    if fit.kind == "glmm":
        doc["family_params"] = fit.family_params
    if confint is not None:
        doc["confint"] = {"method": confint.attrs.get("method"),
                          "intervals": {name: {str(c): r[c] for c in confint.columns} for name, r in confint.iterrows()}}
    return _jsonable(doc)


def format_confint(ci, method: str, level: float) -> str:
    """Intervals as text: a heading naming the method and level, every number with the same decimals
    (enough for 4 significant digits of the smallest), undefined intervals blank with a note.

    Parameters
    ----------
    ci : pandas.DataFrame
        ``fit.confint(...)``: lower and upper columns, one row per parameter.
    method : str
        ``wald``, ``profile`` or ``boot``.
    level : float
        Confidence level.

    Returns
    -------
    str
        The block printed after the summary.
    """
    what = {"boot": "Parametric bootstrap (percentile)", "profile": "Profile-likelihood"}.get(method,
                                                                                           method.capitalize())
    lo, hi = f"{50 * (1 - level):g} %", f"{100 - 50 * (1 - level):g} %"
    vals = ci[["lower", "upper"]].to_numpy(dtype=float)
    finite = np.abs(vals[np.isfinite(vals) & (vals != 0)])
    decimals = 4 if not finite.size else int(min(6, max(0, 3 - np.floor(np.log10(finite.min())))))
    cells = [["" if not np.isfinite(v) else f"{v:.{decimals}f}" for v in row] for row in vals]
    names = [str(i) for i in ci.index]
    wn = max([len(n) for n in names] + [0])
    w = [max(len(lo), *(len(c[0]) for c in cells)), max(len(hi), *(len(c[1]) for c in cells))]
    lines = [f"{what} confidence intervals ({100 * level:g}%):", f"{'':<{wn}} {lo:>{w[0]}} {hi:>{w[1]}}"]
    lines += [f"{n:<{wn}} {a:>{w[0]}} {b:>{w[1]}}" for n, (a, b) in zip(names, cells)]
    if not np.isfinite(vals).all():
        lines.append("(blank: not defined for this method; Wald intervals of variance parameters need "
                     "--confint profile or bootstrap)" if method == "wald" else "(blank: not computed)")
    return "\n".join(lines)


@contextmanager
def progress(label: str, enabled: bool, delay: float = 2.0):
    """Show '<label>... 12 s' on stderr while slow work runs (only after ``delay`` seconds, so quick fits stay quiet).

    Parameters
    ----------
    label : str
        What is running ("fitting", "profile intervals").
    enabled : bool
        Show anything at all (off when stderr is not a terminal, unless ``--progress``).
    delay : float, default 2.0
        Seconds of silence before the first line.

    Returns
    -------
    contextmanager
        A context manager; on leaving it, a "done in N s" line ends the display if one was shown.
    """
    if not enabled:
        yield
        return
    stop = threading.Event()
    t0 = time.perf_counter()
    shown = []

    def tick():
        if stop.wait(delay):
            return
        while not stop.is_set():
            sys.stderr.write(f"\rglmmkit: {label}... {time.perf_counter() - t0:.0f} s")
            sys.stderr.flush()
            shown.append(True)
            stop.wait(1.0)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        if shown:
            sys.stderr.write(f"\rglmmkit: {label}: done in {time.perf_counter() - t0:.1f} s\n")
            sys.stderr.flush()


def _cmd_demo(args) -> int:
    from .glmer import glmer
    from .lmer import lmer

    chosen = DEMOS if not args.name else [d for d in DEMOS if d[0].lower() == args.name.lower()]
    if not chosen:
        raise GlmmkitError(f"no demo named {args.name!r}{_did_you_mean(args.name, [d[0] for d in DEMOS])}; "
                           f"choose one of {', '.join(d[0] for d in DEMOS)}")
    for name, kind, formula, kwargs, what in chosen:
        print(f"=== {name}: {what}")
        fn = lmer if kind == "lmer" else glmer
        fit = fn(formula, data=datasets.load(name), data_name=name, **kwargs)
        print(fit.summary())
        print(f"(fitted in {fit.optimizer_info.time_s * 1000:.1f} ms, {fit.optimizer_info.n_evals} evaluations)\n")
    return 0


def _cmd_datasets(args) -> int:
    if args.name:
        if args.name not in datasets.names():
            raise GlmmkitError(f"no bundled data set {args.name!r}{_did_you_mean(args.name, datasets.names())}; "
                               f"available: {', '.join(datasets.names())}")
        info = datasets.describe(args.name)
        print(f"{args.name}: {info['description']}\nSource: {info['source']}\nRows: {info['rows']}\nColumns:")
        for col in info["columns"]:
            levels = col.get("levels")
            extra = f" ({len(levels)} levels: {', '.join(levels[:6])}{', ...' if len(levels) > 6 else ''})" if levels else ""
            print(f"  {col['name']:<14s} {col['type']}{extra}")
        return 0
    for name in datasets.names():
        info = datasets.describe(name)
        print(f"{name:14s} {info['rows']:>7} rows  {info['description']}")
    return 0


def _fit_from_args(args, df):
    from .glmer import glmer
    from .lmer import lmer

    family = (args.family or "gaussian").lower()
    method = (args.method or "").lower()
    data_name = Path(args.data).name
    family_params = None
    if args.family_param:
        family_params = {}
        for item in args.family_param:
            key, sep, value = item.partition("=")
            try:
                family_params[key.strip()] = float(value)
            except ValueError:
                sep = ""
            if not sep or not key.strip():
                raise GlmmkitError(f"--family-param {item!r} must look like name=number, e.g. df=4")
    if family == "gaussian" and (args.link in (None, "identity")):
        if method not in ("", "reml", "ml"):
            raise GlmmkitError(f"--method {args.method!r} is not available for a linear mixed model (gaussian family, "
                               "identity link); use reml or ml")
        if args.nagq is not None or args.olre or family_params:
            raise GlmmkitError("--nagq, --olre and --family-param apply to GLMMs; give --family for a non-gaussian "
                               "response")
        return lmer(args.formula, data=df, reml=method != "ml", weights=args.weights, offset=args.offset,
                    data_name=data_name)
    if method in ("reml", "ml"):
        raise GlmmkitError(f"--method {method} is for linear mixed models; a {family} GLMM is fitted by laplace "
                           "(default), agq (with --nagq K) or pql")
    if method not in ("", "laplace", "agq", "pql", "nagq0"):
        raise GlmmkitError(f"--method {args.method!r} is not one of reml, ml, laplace, agq, pql, nagq0")
    nagq = 1 if args.nagq is None else args.nagq
    if method == "agq" and args.nagq is None:
        nagq = 7
    if method == "laplace" and nagq != 1:
        raise GlmmkitError("--method laplace means --nagq 1; use --method agq --nagq K for quadrature")
    if method == "nagq0":
        nagq = 0
    return glmer(args.formula, data=df, family=family, link=args.link, nagq=nagq,
                 method="pql" if method == "pql" else None, weights=args.weights, offset=args.offset,
                 family_params=family_params, olre=args.olre, data_name=data_name)


def _check_columns(df, option: str, names) -> None:
    """One error naming every column ``option`` gives that the data lacks, with the nearest existing name.

    Parameters
    ----------
    df : pandas.DataFrame
        The data read.
    option : str
        The command-line option (``--factor``, ``--weights``, ``--offset``), for the message.
    names : list of str
        Column names given with that option.

    Returns
    -------
    None
        Raises GlmmkitError when a column is missing.
    """
    missing = [c for c in names if c not in df.columns]
    if missing:
        what = "; ".join(f"{c!r}{_did_you_mean(c, df.columns)}" for c in missing)
        raise GlmmkitError(f"{option} names column(s) not in the data: {what}; columns are "
                           f"{', '.join(map(str, df.columns))}")


def _as_factors(df, spec):
    """Turn the named columns into categoricals, levels in numeric order when the codes are numbers."""
    import pandas as pd

    names = [c.strip() for item in spec for c in item.split(",") if c.strip()]
    _check_columns(df, "--factor", names)
    df = df.copy()
    for c in names:
        levels = pd.unique(df[c].dropna())
        try:
            levels = sorted(levels)
        except TypeError:  # mixed types: keep order of appearance
            pass
        df[c] = pd.Categorical(df[c], categories=levels)
    return df


def _is_parquet_set(path: str) -> bool:
    """A folder of Parquet files or a glob (``data/*.parquet``): read as a Dask DataFrame."""
    return Path(path).is_dir() or any(ch in path for ch in "*?[")


def _cmd_fit_dask(args) -> int:
    """``glmmkit fit`` on a Parquet folder or glob (or with ``--scheduler``): an LMM fitted on Dask."""
    from .exceptions import DistributedError

    try:
        from .distributed import require_dask

        require_dask()
        import dask.dataframe as dd
        from distributed import Client
    except ImportError as exc:
        raise GlmmkitError(str(exc)) from None
    family = (args.family or "gaussian").lower()
    if family != "gaussian" or args.link not in (None, "identity"):
        raise GlmmkitError("a Parquet folder or --scheduler fits linear mixed models only (so far); GLMMs on Dask "
                           "are not available yet: read the data into one file for glmer")
    for flag, given in (("--confint", args.confint), ("--report", args.report), ("--factor", args.factor),
                        ("--nagq", args.nagq), ("--olre", args.olre or None), ("--family-param", args.family_param)):
        if given:
            raise GlmmkitError(f"{flag} is not available for a Dask fit (a Parquet folder or --scheduler); "
                               "fit an in-memory copy of the data for it")
    method = (args.method or "").lower()
    if method not in ("", "reml", "ml"):
        raise GlmmkitError(f"--method {args.method!r} is not available for a linear mixed model; use reml or ml")
    if args.output == "html":
        raise GlmmkitError("--output html is not available for a Dask fit; use text or json")
    path = args.data
    if not _is_parquet_set(path) and not Path(path).exists():
        raise GlmmkitError(f"data path {path!r} does not exist; give a Parquet file, folder or glob")
    if Path(path).is_dir() and not any(f.suffix.lower() in (".parquet", ".pq") or f.name == "_metadata"
                                       for f in Path(path).rglob("*")):
        raise GlmmkitError(f"data path {path!r} is a directory with no Parquet files; give a CSV, Parquet or Feather "
                           "file, or a folder of Parquet files (fitted on Dask)")
    try:
        ddf = dd.read_parquet(path)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GlmmkitError(f"cannot read {path!r} as Parquet: {first}") from None
    client = None
    if args.scheduler is not None:
        try:
            client = Client(args.scheduler, timeout=args.scheduler_timeout)
        except Exception as exc:
            raise DistributedError(f"cannot connect to the Dask scheduler at {args.scheduler!r} ({type(exc).__name__}: "
                                   f"{exc}); start one (dask scheduler) or check the address") from None
    try:
        from .lmer import lmer

        show = args.progress or (args.progress is None and sys.stderr.isatty())
        with progress("fitting on Dask", show):
            fit = lmer(args.formula, data=ddf, reml=method != "ml", weights=args.weights, offset=args.offset,
                       data_name=Path(path.rstrip("/")).name)
        text = json.dumps(fit_to_json(fit), indent=2) if args.output == "json" else str(fit.summary())
    finally:
        if client is not None:
            client.close()
    print(text)
    return 0


def _cmd_fit(args) -> int:
    if not 0 < args.level < 1:
        hint = f"; did you mean --level {args.level / 100:g}?" if 1 < args.level < 100 else ""
        raise GlmmkitError(f"--level {args.level:g} must be between 0 and 1, e.g. 0.95 for 95% intervals{hint}")
    if args.jobs < 1:
        raise GlmmkitError(f"--jobs {args.jobs} must be at least 1 (worker processes for the bootstrap)")
    if args.report:
        _check_writable(args.report)
    if args.scheduler is not None or _is_parquet_set(args.data):
        return _cmd_fit_dask(args)
    sep = {"\\t": "\t", "tab": "\t"}.get(args.sep, args.sep)
    df = _load_data(args.data, sep=sep, decimal=args.decimal)
    for option, column in (("--weights", args.weights), ("--offset", args.offset)):
        if column is not None:
            _check_columns(df, option, [column])
    if args.factor:
        df = _as_factors(df, args.factor)
    show = args.progress or (args.progress is None and sys.stderr.isatty())
    with progress("fitting", show):
        fit = _fit_from_args(args, df)
    ci = None
    method = {"bootstrap": "boot"}.get(args.confint, args.confint)
    if args.confint:
        with progress(f"{args.confint} intervals", show):
            ci = fit.confint(method=method, level=args.level, n_boot=args.nboot, seed=args.seed,
                             progress=bool(show), n_jobs=args.jobs)
            ci.attrs.update({"method": method, "level": args.level})
            if method == "boot":
                ci.attrs["n_boot"] = args.nboot
    if args.output == "json":
        print(json.dumps(fit_to_json(fit, ci), indent=2))
    elif args.output == "html":
        from .report import fit_report_html

        print(fit_report_html(fit, plots=False, confint=ci))
    else:
        print(fit.summary())
        if ci is not None:
            print()
            print(format_confint(ci, method, args.level))
    if args.report:
        with progress("writing the report", show):
            try:
                path = fit.report(args.report, seed=args.seed if args.seed is not None else 0, confint=ci)
            except OSError as exc:
                raise GlmmkitError(f"cannot write the report to {args.report!r}: {exc.strerror or exc}") from None
        print(f"report written to {path}", file=sys.stderr)
    return 0


EXAMPLES = """examples:
  glmmkit datasets                        list the bundled data sets (glmmkit datasets cbpp: its columns)
  glmmkit demo sleepstudy                 fit a bundled example and print its summary
  glmmkit fit "Reaction ~ Days + (Days | Subject)" --data sleepstudy --report sleep.html
  glmmkit fit "cbind(incidence, size - incidence) ~ period + (1 | herd)" --data cbpp \\
      --family binomial --confint profile
  glmmkit fit "y ~ x + (1 | site)" --data my_data.csv --sep ';' --decimal ',' --output json
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``glmmkit`` argument parser (sub-commands demo, datasets and fit).

    Returns
    -------
    argparse.ArgumentParser
        A parser whose usage errors are one line and exit with status 2.
    """
    from . import __version__

    parser = OneLineArgumentParser(prog="glmmkit", description="Mixed-effects models with lme4 formulas.",
                                   epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"glmmkit {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show Python tracebacks (for bug reports)")
    sub = parser.add_subparsers(dest="command", parser_class=OneLineArgumentParser, metavar="{demo,datasets,fit}")
    p = sub.add_parser("demo", help="fit the bundled seed examples and print lme4-style summaries")
    p.add_argument("name", nargs="?", help="run only this demo (" + ", ".join(d[0] for d in DEMOS) + ")")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser("datasets", help="list the bundled data sets, or describe one")
    p.add_argument("name", nargs="?", help="describe this data set (source, columns)")
    p.set_defaults(func=_cmd_datasets)
    p = sub.add_parser("fit", help="fit a model to a CSV/Parquet/Feather file (or a bundled data set name)",
                       description="Fit an LMM (default, gaussian family) or a GLMM (--family) and print the summary.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("formula", help="lme4 formula, e.g. 'y ~ x + (1 | g)'")
    p.add_argument("--data", required=True, help="data file (.csv, .tsv, .parquet, .feather), bundled data set name, "
                   "or a folder or glob of Parquet files (fitted on Dask: glmmkit[dask])")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="fit on this Dask scheduler (tcp://host:8786); the data is read with dask.dataframe.read_parquet")
    p.add_argument("--scheduler-timeout", type=float, default=10.0, help=argparse.SUPPRESS)
    p.add_argument("--sep", default=None, help="field separator of a text file, e.g. ';' (default: ',' or tab for .tsv)")
    p.add_argument("--decimal", default=".", help="decimal mark of a text file (',' for many European CSVs)")
    p.add_argument("--family", default=None, help="response family: " + ", ".join(FAMILIES) + " (default gaussian)")
    p.add_argument("--link", default=None, help="link function (default: the family's canonical link)")
    p.add_argument("--method", default=None,
                   help="reml (LMM default), ml, laplace (GLMM default), agq, pql, nagq0")
    p.add_argument("--nagq", type=int, default=None, help="quadrature nodes per random effect (with --method agq)")
    p.add_argument("--factor", action="append", metavar="COL[,COL...]",
                   help="treat these columns as categorical (numbers coded as categories in a CSV), repeatable")
    p.add_argument("--weights", default=None, help="column of prior weights (binomial: number of trials)")
    p.add_argument("--offset", default=None, help="column added to the linear predictor")
    p.add_argument("--olre", action="store_true", help="add an observation-level random effect (overdispersion)")
    p.add_argument("--family-param", action="append", metavar="NAME=VALUE",
                   help="hold a family parameter fixed, e.g. df=4 for student_t (repeatable)")
    p.add_argument("--confint", choices=["wald", "profile", "boot", "bootstrap"], default=None,
                   help="also compute intervals (bootstrap = boot, as fit.confint's method names)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--nboot", type=int, default=500, help="bootstrap replicates (default 500)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes for the bootstrap")
    p.add_argument("--seed", type=int, default=None, help="random seed (bootstrap, report simulations)")
    p.add_argument("--output", choices=["text", "json", "html"], default="text", help="what to print")
    p.add_argument("--report", default=None, metavar="FILE.html", help="also write a self-contained HTML report")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show progress on stderr for slow work (default: when stderr is a terminal)")
    p.set_defaults(func=_cmd_fit)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    text = " ".join(str(message).split())
    print(f"glmmkit: warning: {text}", file=sys.stderr)


def main(argv=None) -> int:
    """Run the ``glmmkit`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 for bad input or usage (one ``glmmkit: error:`` line on stderr),
        1 for an internal error, 130 when interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse's own exit: --help (0) or a usage error (2, already printed)
        return int(exc.code or 0)
    if getattr(args, "func", None) is None:  # bare ``glmmkit``: what it can do
        parser.print_help()
        return 0
    old_showwarning = warnings.showwarning
    warnings.showwarning = _one_line_warning
    try:
        return args.func(args)
    except GlmmkitError as exc:
        if args.traceback:
            raise
        print(f"glmmkit: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("glmmkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug of ours: still one line, with how to get the details
        if args.traceback:
            raise
        msg = " ".join(str(exc).split()) or "no message"
        print(f"glmmkit: error: internal error ({type(exc).__name__}: {msg}); rerun with --traceback and report it "
              "at the project's issue tracker", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = old_showwarning


if __name__ == "__main__":
    sys.exit(main())
