#!/usr/bin/env python3
"""Time glmmkit's generalized linear mixed models against lme4 and the Python peers.

For every case the script fits the model once to warm up and then times
``--repeats`` further fits (``--repeats-large`` for the cases with 1e5 rows or
more) with ``time.perf_counter``, all in this process. lme4 runs in one
``Rscript`` session per case, timed inside R around the ``glmer()`` call alone
(default control, Laplace), with the same warm-up and repeats. Medians, ratios
(peer / glmmkit; above 1 means glmmkit is faster) and log-likelihood
differences are printed as tables and, with ``--json OUT``, written to a file.

glmmkit's peak memory is measured for the cases of ``--rss-cases`` (default the
1e6-row one; the issue's target is below 2 GB): a fresh Python process loads
that case's data, fits it once with glmmkit and reports its own peak resident
set size (Linux ``VmHWM``, also reset at the fit's start for the fit's own
peak; ``ru_maxrss`` would not do: after fork + exec it still holds the
parent's peak), so the other cases and engines of the run do not count.

BLAS/OpenMP and rayon thread pools are pinned to ``--threads`` (default 1) for
everyone: the script re-executes itself with the variables of
``_peers.THREAD_VARS`` set, and R and the memory probe inherit them.

Data: cbpp comes from ``glmmkit.datasets.load("cbpp")`` (else
``<--data-dir>/cbpp.csv``); the simulated sets are regenerated with the
reference ``simulate.py`` (the commands of ``perf.json``) and kept in
``--cache-dir`` (default: a temporary folder removed at exit) so that reruns
with the same folder do not regenerate them.

Usage::

    python benchmarks/bench_glmm.py [--repeats 5] [--repeats-large 1]
                                    [--cases cbpp,bern_ri_1e5] [--skip-r-large]
                                    [--cache-dir ~/.cache/glmmkit-bench]
                                    [--engines glmmkit,lme4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
from _common import package_data, simulated

# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

#: GLMM cases, all Laplace (lme4's default ``nAGQ = 1``). ``large`` marks the
#: cases with 1e5 rows or more: timed ``--repeats-large`` times, and left out
#: for lme4 by ``--skip-r-large``. The simulated sets are those of
#: ``perf.json`` (``simulate_command``).
GLMM_CASES: list[dict[str, Any]] = [
    {
        "name": "cbpp",
        "loader": package_data("cbpp"),
        "formula": "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        "family": "binomial",
        "method": "Laplace",
    },
    {
        "name": "bern_ri_1e5",
        "loader": simulated("bern_ri", seed=102, rows=100_000, groups=2_000),
        "formula": "y ~ x1 + x2 + x3 + (1 | g)",
        "family": "binomial",
        "method": "Laplace",
        "large": True,
    },
    {
        "name": "bern_ri_1e6",
        "loader": simulated("bern_ri", seed=103, rows=1_000_000, groups=20_000),
        "formula": "y ~ x1 + x2 + x3 + (1 | g)",
        "family": "binomial",
        "method": "Laplace",
        "large": True,
    },
    {
        "name": "pois_slope_1e5",
        "loader": simulated("pois_slope", seed=104, rows=100_000, groups=1_000),
        "formula": "y ~ x1 + x2 + (1 + x1 | g)",
        "family": "poisson",
        "method": "Laplace",
        "large": True,
    },
    {
        "name": "bern_crossed_1e5",
        "loader": simulated("bern_crossed", seed=105, rows=100_000, groups=500, groups2=300),
        "formula": "y ~ x1 + x2 + (1 | g1) + (1 | g2)",
        "family": "binomial",
        "method": "Laplace",
        "large": True,
    },
    {
        # the NB2 case; its R anchor is glmmTMB (lme4 has NB2 only through glmer.nb's outer loop)
        "name": "nb2_ri_1e5",
        "loader": simulated("counts_ri", rows=100_000, groups=1_000),  # the command: default seed
        "formula": "y ~ x1 + x2 + (1 | g)",
        "family": "negative_binomial",
        "method": "Laplace",
        "large": True,
        "r_call": "glmmTMB::glmmTMB({formula}, data = df, family = glmmTMB::nbinom2)",
    },
]

#: Peak-memory target of the issue, in bytes (2 GB).
RSS_TARGET = 2e9

#: Appended to the header's timing line.
PROTOCOL = (
    "lme4 timed inside R around glmer() (default control, nAGQ = 1) with the data "
    "loaded (nb2_ri_1e5: glmmTMB(family = nbinom2) in the lme4 column); glmmkit glmer(nagq=1); glmm with anova_test='Wald', wald_se='hessian'; "
    "mixedlm glmer() defaults"
)


# --------------------------------------------------------------------------
# glmmkit peak memory, in a fresh process
# --------------------------------------------------------------------------


def _proc_status_bytes(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (Linux) in bytes, or None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _peak_rss_bytes() -> int:
    """Peak resident set size of this process.

    Linux: ``VmHWM`` of ``/proc/self/status``. Not ``ru_maxrss``: a process
    started by (v)fork + exec keeps, in ``ru_maxrss``, the peak of the parent's
    memory image it replaced, so a child of the benchmark process would report
    at least the benchmark's own peak. Elsewhere ``ru_maxrss`` is the fallback.
    """
    hwm = _proc_status_bytes("VmHWM")
    if hwm is not None:
        return hwm
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (``VmHWM``) to its current RSS: writing 5
    to ``/proc/self/clear_refs`` (Linux >= 4.0). False where that fails."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def rss_child(case: dict, sources: _common.DataSources) -> dict[str, Any]:
    """Body of the memory probe: import glmmkit, load the data, fit once.

    Returns
    -------
    dict
        ``peak_rss_bytes`` (whole process: imports, data, fit),
        ``rss_before_fit_bytes`` (peak of the imports and data loading),
        ``rss_at_fit_start_bytes`` (resident when the fit starts: the data),
        ``fit_peak_rss_bytes`` (peak while fitting, data included; None where
        the peak cannot be reset), ``fit_s`` (this first fit, JIT compilation
        included) and ``loglik``.
    """
    import glmmkit

    data, _ = case["loader"](sources)
    fit_once = _common.GLMMKIT.make_fit(glmmkit, case, data)  # the timed call
    before = _peak_rss_bytes()
    at_start = _proc_status_bytes("VmRSS")
    reset = _reset_peak_rss()
    start = time.perf_counter()
    fit = fit_once()
    fit_s = time.perf_counter() - start
    during = _peak_rss_bytes()
    return {
        "peak_rss_bytes": max(before, during),
        "rss_before_fit_bytes": before,
        "rss_at_fit_start_bytes": at_start,
        "fit_peak_rss_bytes": during if reset else None,
        "fit_s": fit_s,
        "loglik": float(fit.loglik),
    }


def measure_rss(case: dict, args: argparse.Namespace, cache_dir: Path) -> dict[str, Any]:
    """Run :func:`rss_child` for `case` in a fresh interpreter (this script,
    ``--rss-child``), with the same thread variables, data options and cache.

    Returns
    -------
    dict
        The child's result, or ``{"error": message}``.
    """
    command = [
        sys.executable, str(Path(__file__).resolve()),
        "--rss-child", case["name"],
        "--threads", str(args.threads),
        "--data-dir", str(args.data_dir),
        "--cache-dir", str(cache_dir),
    ]
    if args.simulate_script:
        command += ["--simulate-script", str(args.simulate_script)]
    print(f"  {case['name']}: glmmkit peak RSS (fresh process) ...", file=sys.stderr, flush=True)
    proc = subprocess.run(command, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip() or f"exit status {proc.returncode}")[-2000:]}
    return json.loads(lines[-1])


def _mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


def rss_section(records: list[dict]) -> str | None:
    """Table of the memory probes, or None when no case was probed."""
    header = [
        "case", "rows", "peak RSS", "peak during fit", "RSS at fit start",
        "peak before fit", "first fit", "target",
    ]
    rows = []
    for rec in records:
        probe = rec.get("glmmkit_rss")
        if probe is None:
            continue
        if "error" in probe:
            failed = [rec["name"], str(rec["rows"] or "-"), "n/a (probe failed, see Notes)"]
            rows.append(failed + [""] * (len(header) - len(failed)))
            continue
        peak = probe["peak_rss_bytes"]
        met = "yes" if peak < RSS_TARGET else "NO"
        optional = [probe["fit_peak_rss_bytes"], probe["rss_at_fit_start_bytes"]]
        rows.append([
            rec["name"],
            str(rec["rows"] or "-"),
            _mb(peak),
            *("n/a" if value is None else _mb(value) for value in optional),
            _mb(probe["rss_before_fit_bytes"]),
            _common.fmt_time(probe["fit_s"]),
            f"{met} (< {_mb(RSS_TARGET)})",
        ])
    if not rows:
        return None
    return "\n".join([
        "glmmkit peak memory (fresh process: import, load data, one glmer() fit; "
        "peak RSS = VmHWM of the whole process; 'during fit' = peak after "
        "resetting it at the fit's start, data included; 'before fit' = imports "
        "and data loading)",
        _common.table(header, rows),
    ])


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _common.add_common_arguments(
        parser,
        GLMM_CASES,
        repeats_large_default=1,
        repeats_large_help="timed fits for the cases with >= 1e5 rows (default 1)",
        r_timeout_default=1200.0,
    )
    parser.add_argument(
        "--skip-r-large", action="store_true",
        help="do not run lme4 on the cases with >= 1e5 rows (quick runs)",
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=None,
        help="keep generated CSVs here and reuse them (default: a temporary folder)",
    )
    parser.add_argument(
        "--rss-cases", default="bern_ri_1e6",
        help="comma-separated cases whose glmmkit peak RSS is measured in a fresh "
        "process, or 'none' (default bern_ri_1e6)",
    )
    parser.add_argument("--rss-child", metavar="CASE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _common.check_common_arguments(parser, args, GLMM_CASES)
    args.rss_cases = [] if args.rss_cases in ("", "none") else args.rss_cases.split(",")
    names = {c["name"] for c in GLMM_CASES}
    unknown = set(args.rss_cases) - names
    if args.rss_child is not None and args.rss_child not in names:
        unknown.add(args.rss_child)
    if unknown:
        parser.error(f"unknown case: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the selected cases on the selected engines and print the tables."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    _common.pin_threads(args.threads, __file__, argv)
    _common.use_source_tree()
    cases = {c["name"]: c for c in GLMM_CASES}

    if args.rss_child:  # memory probe, started by measure_rss()
        sources = _common.make_sources(args, args.cache_dir)
        print(json.dumps(rss_child(cases[args.rss_child], sources)))
        return 0

    with tempfile.TemporaryDirectory(prefix="glmmkit-bench-cache-") as tmp:
        cache_dir = (args.cache_dir or Path(tmp)).resolve()
        engines = _common.make_engines(args)
        sources = _common.make_sources(args, cache_dir)
        meta = _common.environment(engines, args)
        meta["cache_dir"] = str(cache_dir) if args.cache_dir else None
        meta["skip_r_large"] = args.skip_r_large
        probe = _common.GLMMKIT in engines
        meta["rss_cases"] = [n for n in args.rss_cases if n in args.cases] if probe else []
        lines = [_common.header_text(meta, args.threads, "glmmkit GLMM benchmark", PROTOCOL)]
        lines.append(f"data cache: {meta['cache_dir'] or 'temporary folder, removed at exit'}")
        if args.skip_r_large:
            lines.append("--skip-r-large: lme4 not run on the cases with >= 1e5 rows")
        print("\n".join(lines), end="\n\n", flush=True)

        records = []
        for case in GLMM_CASES:
            if case["name"] not in args.cases:
                continue
            large = case.get("large", False)
            repeats = args.repeats_large if large else args.repeats
            skip = {"lme4": "skipped: --skip-r-large"} if large and args.skip_r_large else {}
            record = _common.run_case(case, engines, sources, repeats, skip=skip)
            if case["name"] in meta["rss_cases"] and record["rows"] is not None:
                record["glmmkit_rss"] = measure_rss(case, args, cache_dir)
            records.append(record)

    section = rss_section(records)
    probe_errors = [
        f"{rec['name']} / glmmkit peak RSS probe: {rec['glmmkit_rss']['error']}"
        for rec in records
        if "error" in rec.get("glmmkit_rss", {})
    ]
    print(
        _common.render(
            records,
            [e.name for e in engines],
            loglik_title="Log-likelihood (Laplace approximation) and differences",
            extra_sections=[section] if section else [],
            extra_notes=probe_errors,
        )
    )
    if args.json:
        args.json.write_text(json.dumps(_common.to_json(records, meta), indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
