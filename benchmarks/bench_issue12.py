#!/usr/bin/env python3
"""Issue 12's speed table: multi-factor, small and large models, glmmkit against its peers in one run.

Cases: the medium multi-factor GLMMs (grouseticks' three-factor Poisson model,
VerbAgg's crossed binomial model), the small ones (sleepstudy REML, cbpp
Laplace, Owls NB2 with an offset), and the large cases of ``bench_glmm.py`` /
``bench_lmm.py`` (bern_ri 3e5, bern_crossed 3e5, pois_slope 1e5, InstEval).
Every engine fits each case once to warm up and is then timed ``--repeats``
times (``--repeats-large`` for the large cases) with ``time.perf_counter``
(lme4 / glmmTMB inside R around the fitting call alone, see ``_peers.py``);
the tables give medians, peer / glmmkit time ratios (above 1: glmmkit faster)
and log-likelihood differences (glmmkit minus peer).  The Owls model's R
anchor is glmmTMB (``nbinom2``) in the lme4 column.

Peak memory of the 1e6-row Bernoulli random-intercept fit (issue 12's target:
below 600 MB) is measured in a fresh interpreter (``bench_glmm.py``'s probe:
the process's VmHWM on Linux, ``resource.getrusage``'s ``ru_maxrss`` elsewhere;
after fork + exec ``ru_maxrss`` would still hold this process's own peak), so
that nothing else of this run counts.

Data: grouseticks, VerbAgg and Owls from ``tests/data/r_datasets`` (exported
from R, factor levels in R's order; grouseticks' centred height ``cHEIGHT``;
VerbAgg's ``r2`` as 0/1 so that every engine reads the same response);
sleepstudy and cbpp from ``glmmkit.datasets``; InstEval and the simulated sets
as in ``bench_lmm.py`` / ``bench_glmm.py``.

Usage::

    python benchmarks/bench_issue12.py [--repeats 3] [--repeats-large 1]
                                       [--cases grouseticks,verbagg] [--skip-r-large]
                                       [--rss-cases bern_ri_1e6|none]
                                       [--cache-dir ~/.cache/glmmkit-bench] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import _common
import bench_glmm
import bench_lmm
from _common import r_dataset, simulated


def _verbagg(df):
    """VerbAgg with r2 as 0/1 (Y = 1), the numeric response every engine accepts."""
    return df.assign(r2=(df["r2"] == "Y").astype(float))


#: the cases bench_lmm.py / bench_glmm.py already define, reused as they are
_LMM = {c["name"]: c for c in bench_lmm.LMM_CASES}
_GLMM = {c["name"]: c for c in bench_glmm.GLMM_CASES}

#: The cases of the issue, in table order. ``large``: timed ``--repeats-large`` times.
CASES: list[dict[str, Any]] = [
    {
        "name": "grouseticks",
        "loader": r_dataset("grouseticks"),
        "formula": "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
        "family": "poisson",
        "method": "Laplace",
    },
    {
        "name": "verbagg",
        "loader": r_dataset("VerbAgg", _verbagg),
        "formula": "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
        "family": "binomial",
        "method": "Laplace",
    },
    _LMM["sleepstudy"],
    _GLMM["cbpp"],
    {
        # glmmTMB's vignette model; its R anchor is glmmTMB
        "name": "owls_nb2",
        "loader": r_dataset("Owls"),
        "formula": "SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest)",
        "family": "negative_binomial",
        "method": "Laplace",
        "r_call": "glmmTMB::glmmTMB({formula}, data = df, family = glmmTMB::nbinom2)",
    },
    {
        "name": "bern_ri_3e5",
        "loader": simulated("bern_ri", seed=102, rows=300_000, groups=6_000),
        "formula": "y ~ x1 + x2 + x3 + (1 | g)",
        "family": "binomial",
        "method": "Laplace",
        "large": True,
    },
    {
        "name": "bern_crossed_3e5",
        "loader": simulated("bern_crossed", seed=105, rows=300_000, groups=500, groups2=300),
        "formula": "y ~ x1 + x2 + (1 | g1) + (1 | g2)",
        "family": "binomial",
        "method": "Laplace",
        "large": True,
    },
    _GLMM["pois_slope_1e5"],
    _LMM["insteval"],
]

#: Peak-memory target of issue 12 for the 1e6-row Bernoulli fit, in bytes.
RSS_TARGET = 600e6

PROTOCOL = (
    "lme4 timed inside R around lmer()/glmer() (default control, nAGQ = 1) with the data loaded "
    "(owls_nb2: glmmTMB(family = nbinom2) in the lme4 column); glmmkit lmer()/glmer(nagq=1); "
    "glmm with anova_test='Wald', wald_se='hessian' (GLMM) or satterthwaite=False, wald_se='rx' (LMM); "
    "mixedlm lmer()/glmer() defaults"
)


def _rss_probe(case_name: str, args: argparse.Namespace, cache_dir: Path) -> dict[str, Any]:
    """bench_glmm's fresh-process probe of glmmkit's peak memory for one of its cases."""
    case = {c["name"]: c for c in bench_glmm.GLMM_CASES}[case_name]
    probe_args = argparse.Namespace(threads=args.threads, data_dir=args.data_dir,
                                    simulate_script=args.simulate_script)
    return bench_glmm.measure_rss(case, probe_args, cache_dir)


def rss_section(probes: dict[str, dict]) -> str | None:
    """Table of the memory probes against the 600 MB target."""
    if not probes:
        return None
    header = ["case", "peak RSS", "peak during fit", "RSS at fit start", "first fit", "target"]
    rows = []
    for name, probe in probes.items():
        if "error" in probe:
            rows.append([name, "n/a (probe failed, see Notes)", "", "", "", ""])
            continue
        peak = probe["peak_rss_bytes"]
        during = probe["fit_peak_rss_bytes"]
        rows.append([
            name, f"{peak / 1e6:,.0f} MB",
            "n/a" if during is None else f"{during / 1e6:,.0f} MB",
            f"{probe['rss_at_fit_start_bytes'] / 1e6:,.0f} MB",
            _common.fmt_time(probe["fit_s"]),
            f"{'yes' if peak < RSS_TARGET else 'NO'} (< {RSS_TARGET / 1e6:,.0f} MB)",
        ])
    return "\n".join([
        "glmmkit peak memory (fresh process: import, load data, one glmer() fit; VmHWM of the process)",
        _common.table(header, rows),
    ])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _common.add_common_arguments(
        parser, CASES, repeats_large_default=1,
        repeats_large_help="timed fits for the large cases (default 1)", r_timeout_default=1200.0,
    )
    parser.set_defaults(repeats=3)
    parser.add_argument("--skip-r-large", action="store_true",
                        help="do not run lme4 on the large cases (quick runs)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="keep generated CSVs here and reuse them (default: a temporary folder)")
    parser.add_argument("--rss-cases", default="bern_ri_1e6",
                        help="bench_glmm cases whose glmmkit peak RSS is measured in a fresh process, "
                        "or 'none' (default bern_ri_1e6)")
    args = parser.parse_args(argv)
    _common.check_common_arguments(parser, args, CASES)
    args.rss_cases = [] if args.rss_cases in ("", "none") else args.rss_cases.split(",")
    unknown = set(args.rss_cases) - {c["name"] for c in bench_glmm.GLMM_CASES}
    if unknown:
        parser.error(f"unknown --rss-cases: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the selected cases on the selected engines and print the tables."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    _common.pin_threads(args.threads, __file__, argv)
    _common.use_source_tree()
    with tempfile.TemporaryDirectory(prefix="glmmkit-bench-cache-") as tmp:
        cache_dir = (args.cache_dir or Path(tmp)).resolve()
        engines = _common.make_engines(args)
        sources = _common.make_sources(args, cache_dir)
        meta = _common.environment(engines, args)
        meta["skip_r_large"] = args.skip_r_large
        print(_common.header_text(meta, args.threads, "glmmkit issue 12 benchmark", PROTOCOL),
              end="\n\n", flush=True)
        records = []
        for case in CASES:
            if case["name"] not in args.cases:
                continue
            large = case.get("large", False)
            repeats = args.repeats_large if large else args.repeats
            skip = {"lme4": "skipped: --skip-r-large"} if large and args.skip_r_large else {}
            records.append(_common.run_case(case, engines, sources, repeats, skip=skip))
        probes = {}
        if _common.GLMMKIT in engines:
            for name in args.rss_cases:
                probes[name] = _rss_probe(name, args, cache_dir)
    meta["rss"] = probes
    section = rss_section(probes)
    errors = [f"{name} / peak RSS probe: {p['error']}" for name, p in probes.items() if "error" in p]
    print(_common.render(records, [e.name for e in engines],
                         loglik_title="Log-likelihood (REML for sleepstudy, insteval; Laplace otherwise) and differences",
                         extra_sections=[section] if section else [], extra_notes=errors))
    if args.json:
        args.json.write_text(json.dumps(_common.to_json(records, meta), indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
