"""Command line: ``glmmkit demo``, ``glmmkit fit``, ``glmmkit datasets``.

Errors on bad input print one line (``glmmkit: error: ...``) and exit with 2;
never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import datasets
from .exceptions import GlmmkitError

DEMOS = [
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)", "reaction time over days of sleep deprivation, "
     "correlated random intercept and slope per subject"),
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", "crossed random effects: plates x samples"),
    ("swine", "weight ~ trt * week + (1 | room/pen/pig)", "seed 002's swine experiment: pigs nested in pens "
     "nested in rooms"),
]


def _read_table(path: str):
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise GlmmkitError(f"data file {path!r} does not exist")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if suffix in (".feather", ".arrow"):
            return pd.read_feather(p)
        return pd.read_csv(p)
    except ImportError as exc:
        raise GlmmkitError(f"reading {suffix} files needs pyarrow: pip install pyarrow ({exc})") from None
    except Exception as exc:
        raise GlmmkitError(f"cannot read {path!r}: {exc}") from None


def _fit_json(fit) -> dict:
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    return {
        "formula": fit.formula,
        "method": fit.method,
        "nobs": fit.nobs,
        "loglik": fit.loglik,
        "aic": fit.aic,
        "bic": fit.bic,
        "sigma": fit.sigma,
        "fixef": {k: {"estimate": float(v), "std_error": float(s)} for (k, v), s in zip(fit.fixef.items(), se)},
        "varcorr": json.loads(fit.varcorr.to_json(orient="records")),
        "theta": fit.theta.to_dict(),
        "converged": fit.converged,
        "singular": fit.singular,
        "messages": list(fit.optimizer_info.messages),
    }


def _cmd_demo(args) -> int:
    from .lmer import lmer

    for name, formula, what in DEMOS:
        print(f"=== {name}: {what}")
        fit = lmer(formula, data=datasets.load(name), data_name=name)
        print(fit.summary())
        print(f"(fitted in {fit.optimizer_info.time_s * 1000:.1f} ms, {fit.optimizer_info.n_evals} evaluations)\n")
    return 0


def _cmd_datasets(args) -> int:
    for name in datasets.names():
        info = datasets.describe(name)
        print(f"{name:12s} {info['rows']:>7} rows  {info['description']}")
    return 0


def _cmd_fit(args) -> int:
    from .lmer import lmer

    if args.data in datasets.names() and not Path(args.data).exists():
        df = datasets.load(args.data)
    else:
        df = _read_table(args.data)
    method = (args.method or "reml").lower()
    if method not in ("reml", "ml"):
        raise GlmmkitError(f"--method {args.method!r} is not available for a linear mixed model; use reml or ml")
    fit = lmer(args.formula, data=df, reml=method == "reml", data_name=Path(args.data).name)
    if args.output == "json":
        print(json.dumps(_fit_json(fit), indent=2))
    elif args.output == "html":
        print(fit._repr_html_())
    else:
        print(fit.summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glmmkit", description="Mixed-effects models with lme4 formulas.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="fit bundled example data and print lme4-style summaries")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser("datasets", help="list the bundled data sets")
    p.set_defaults(func=_cmd_datasets)
    p = sub.add_parser("fit", help="fit a model to a CSV/Parquet/Feather file (or a bundled data set name)")
    p.add_argument("formula", help="lme4 formula, e.g. 'y ~ x + (1 | g)'")
    p.add_argument("--data", required=True, help="data file or bundled data set name")
    p.add_argument("--method", default=None, help="reml (default) or ml")
    p.add_argument("--output", choices=["text", "json", "html"], default="text")
    p.set_defaults(func=_cmd_fit)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except GlmmkitError as exc:
        print(f"glmmkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("glmmkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
