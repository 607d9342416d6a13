#!/usr/bin/env python3
"""Time glmmkit's linear mixed models against lme4 and the Python peers.

For every case the script fits the model once to warm up and then times
``--repeats`` further fits (``--repeats-large`` for the large cases) with
``time.perf_counter``, all in this process. lme4 runs in one ``Rscript``
session per case, timed inside R around the ``lmer()`` call alone, with the
same warm-up and repeats. Medians, ratios (peer / glmmkit; above 1 means
glmmkit is faster) and log-likelihood differences are printed as tables and,
with ``--json OUT``, written to a file.

BLAS/OpenMP and rayon thread pools are pinned to ``--threads`` (default 1) for
everyone: the script re-executes itself with the variables of
``_peers.THREAD_VARS`` set, and R inherits them.

Data: R package data sets come from ``glmmkit.datasets.load`` when glmmkit
bundles them, otherwise from ``<--data-dir>/<name>.csv`` with the factor level
order of ``datasets.json`` (looked up in the data folder and its parent).
Simulated sets are regenerated with ``simulate.py`` (``--simulate-script``).

Usage::

    python benchmarks/bench_lmm.py [--repeats 5] [--cases swine,insteval]
                                   [--engines glmmkit,lme4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import _common
from _common import package_data

# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

#: LMM cases. ``family``/``method`` follow cases.json (``gaussian`` with
#: ``REML``/``ML``; the GLMM cases of ``bench_glmm.py`` use e.g. ``binomial``
#: with ``Laplace`` or ``nAGQ=k``). ``large`` cases are timed ``--repeats-large`` times.
LMM_CASES: list[dict[str, Any]] = [
    {
        "name": "sleepstudy",
        "loader": package_data("sleepstudy"),
        "formula": "Reaction ~ Days + (Days | Subject)",
        "family": "gaussian",
        "method": "REML",
    },
    {
        "name": "penicillin",
        "loader": package_data("Penicillin"),
        "formula": "diameter ~ 1 + (1 | plate) + (1 | sample)",
        "family": "gaussian",
        "method": "REML",
    },
    {
        "name": "swine",
        # bundled swine = `simulate.py swine --seed=20240104 --rows=432 --groups=6`, byte for byte
        "loader": package_data("swine"),
        "formula": "weight ~ trt * week + (1 | room/pen/pig)",
        "family": "gaussian",
        "method": "REML",
    },
    {
        "name": "insteval",
        "loader": package_data("InstEval"),
        "formula": "y ~ 1 + service*dept + (1|s) + (1|d)",
        "family": "gaussian",
        "method": "REML",
        "large": True,
    },
]


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

#: Appended to the header's timing line.
PROTOCOL = (
    "lme4 timed inside R around lmer() with the data loaded; "
    "glmm with satterthwaite=False, wald_se='rx'"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _common.add_common_arguments(
        parser,
        LMM_CASES,
        repeats_large_default=2,
        repeats_large_help="timed fits for large cases such as InstEval (default 2)",
        r_timeout_default=600.0,
    )
    args = parser.parse_args(argv)
    _common.check_common_arguments(parser, args, LMM_CASES)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the selected cases on the selected engines and print the tables."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    _common.pin_threads(args.threads, __file__, argv)
    _common.use_source_tree()
    engines = _common.make_engines(args)
    sources = _common.make_sources(args)
    meta = _common.environment(engines, args)
    print(
        _common.header_text(meta, args.threads, "glmmkit LMM benchmark", PROTOCOL),
        end="\n\n", flush=True,
    )

    records = []
    for case in LMM_CASES:
        if case["name"] in args.cases:
            repeats = args.repeats_large if case.get("large") else args.repeats
            records.append(_common.run_case(case, engines, sources, repeats))
    print(
        _common.render(
            records,
            [e.name for e in engines],
            loglik_title="Log-likelihood (REML log-likelihood for REML fits) and differences",
        )
    )
    if args.json:
        args.json.write_text(json.dumps(_common.to_json(records, meta), indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
