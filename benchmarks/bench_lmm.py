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
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

import _peers
from _peers import EngineResult, PythonEngine, Unavailable

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "reference" / "data"

_FACTOR_TYPES = ("factor", "ordered")


# --------------------------------------------------------------------------
# Data loaders
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSources:
    """Where loaders look for data.

    Attributes
    ----------
    data_dir : Path
        Folder with ``<name>.csv`` files (``datasets.json`` in it or its parent).
    simulate_script : Path
        The reference ``simulate.py`` that regenerates simulated sets.
    """

    data_dir: Path
    simulate_script: Path


#: A loader returns the data and a short description of where they came from.
Loader = Callable[[DataSources], tuple[pd.DataFrame, str]]


def _dataset_spec(name: str, data_dir: Path) -> list[dict] | None:
    """Column spec of data set `name` from ``datasets.json``, or None if absent."""
    for folder in (data_dir, data_dir.parent):
        path = folder / "datasets.json"
        if path.is_file():
            return json.loads(path.read_text()).get(name, {}).get("columns")
    return None


def _read_with_spec(path: Path, spec: list[dict]) -> pd.DataFrame:
    """Read a CSV, making factor columns categoricals in the spec's level order."""
    factors = {c["name"]: c for c in spec if c["type"] in _FACTOR_TYPES}
    df = pd.read_csv(path, dtype={name: str for name in factors})
    for name, col in factors.items():
        df[name] = pd.Categorical(
            df[name], categories=col["levels"], ordered=col["type"] == "ordered"
        )
    return df


def package_data(name: str) -> Loader:
    """Loader for an R package data set (sleepstudy, Penicillin, InstEval, ...).

    Parameters
    ----------
    name : str
        Data set name as in ``datasets.json`` and ``glmmkit.datasets``.

    Returns
    -------
    callable
        ``load(sources) -> (DataFrame, source description)``.
    """

    def load(sources: DataSources) -> tuple[pd.DataFrame, str]:
        try:
            from glmmkit import datasets

            return datasets.load(name), "glmmkit.datasets"
        except Exception:  # not installed, not bundled yet, or still being written
            pass
        path = sources.data_dir / f"{name}.csv"
        spec = _dataset_spec(name, sources.data_dir)
        if not path.is_file() or spec is None:
            raise FileNotFoundError(
                f"{name}: not bundled with glmmkit and no {path} with datasets.json"
            )
        return _read_with_spec(path, spec), str(path)

    return load


def simulated(generator: str, **params: int) -> Loader:
    """Loader that regenerates a data set with the reference ``simulate.py``.

    String columns become categoricals with sorted levels, as R's ``factor()``
    makes them (the generators zero-pad labels, so this is also numeric order).

    Parameters
    ----------
    generator : str
        Generator name (``python simulate.py --list``).
    **params : int
        ``seed``, ``rows``, ``groups``, ``groups2`` as command-line options.

    Returns
    -------
    callable
        ``load(sources) -> (DataFrame, source description)``.
    """
    options = [f"--{key}={value}" for key, value in params.items()]

    def load(sources: DataSources) -> tuple[pd.DataFrame, str]:
        script = sources.simulate_script
        if not script.is_file():
            raise FileNotFoundError(f"{generator}: simulate script {script} not found")
        with tempfile.TemporaryDirectory(prefix="glmmkit-bench-") as tmp:
            out = Path(tmp) / f"{generator}.csv"
            subprocess.run(
                [sys.executable, str(script), generator, *options, "--out", str(out)],
                check=True, capture_output=True, text=True,
            )
            df = pd.read_csv(out)
        for name in df.columns:
            if not pd.api.types.is_numeric_dtype(df[name]):
                df[name] = pd.Categorical(df[name], categories=sorted(df[name].unique()))
        return df, f"simulate.py {generator} {' '.join(options)}"

    return load


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

#: LMM cases. ``family``/``method`` follow cases.json (``gaussian`` with
#: ``REML``/``ML``; a GLMM section would use e.g. ``binomial`` with ``Laplace``
#: or ``nAGQ=k``). ``large`` cases are timed ``--repeats-large`` times.
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
# glmmkit
# --------------------------------------------------------------------------


def _glmmkit_fit(module: Any, case: dict, data: pd.DataFrame) -> Callable[[], Any]:
    """``glmmkit.lmer(formula, data=df, reml=...)``."""
    if case["family"] != "gaussian":
        raise Unavailable(f"{case['family']} GLMM not wired for this engine")
    reml = case["method"] == "REML"
    formula = case["formula"]
    return lambda: module.lmer(formula, data=data, reml=reml)


GLMMKIT = PythonEngine(
    name="glmmkit",
    module="glmmkit",
    distribution="glmmkit",
    make_fit=_glmmkit_fit,
    loglik=lambda fit: fit.loglik,
    fixef=lambda fit: fit.fixef.to_dict(),
)


def _use_source_tree() -> None:
    """Make ``src/glmmkit`` importable when glmmkit is not installed."""
    src = REPO_ROOT / "src"
    if importlib.util.find_spec("glmmkit") is None and (src / "glmmkit").is_dir():
        sys.path.insert(0, str(src))


# --------------------------------------------------------------------------
# Running and reporting
# --------------------------------------------------------------------------


def run_case(
    case: dict, engines: list, sources: DataSources, repeats: int
) -> dict[str, Any]:
    """Load a case's data and run every engine on it.

    Returns
    -------
    dict
        ``name``, ``formula``, ``family``, ``method``, ``rows``, ``data_source``,
        ``repeats`` and ``results`` (engine name -> :class:`EngineResult`); on
        a loading error ``rows`` is None and every result carries the reason.
    """
    record = {key: case[key] for key in ("name", "formula", "family", "method")}
    record["repeats"] = repeats
    try:
        data, source = case["loader"](sources)
    except (OSError, subprocess.CalledProcessError) as exc:
        record.update(rows=None, data_source=None)
        record["results"] = {
            e.name: EngineResult.unavailable("no data", str(exc)) for e in engines
        }
        return record
    record.update(rows=len(data), data_source=source)
    record["results"] = {}
    for engine in engines:
        print(f"  {case['name']}: {engine.name} ...", file=sys.stderr, flush=True)
        record["results"][engine.name] = engine.run(case, data, repeats)
    return record


def _fmt_time(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def _na(result: EngineResult) -> str:
    return f"n/a ({result.reason})"


def _time_cell(result: EngineResult) -> str:
    return _fmt_time(result.median) if result.ok else _na(result)


def _ratio_cell(peer: EngineResult, base: EngineResult) -> str:
    if not peer.ok:
        return _na(peer)
    if not base.ok:
        return "n/a (no glmmkit)"
    return f"{peer.median / base.median:.2f}x"


def _loglik_cell(result: EngineResult) -> str:
    return f"{result.loglik:.6f}" if result.ok else _na(result)


def _diff_cell(base: EngineResult, peer: EngineResult) -> str:
    if not peer.ok:
        return _na(peer)
    if not base.ok:
        return "n/a (no glmmkit)"
    return f"{base.loglik - peer.loglik:+.3g}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Plain-text table with left-aligned columns."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
        for row in [header, [""] * len(header), *rows]
    ]
    lines[1] = "  ".join("-" * w for w in widths)
    return "\n".join(lines)


def render(records: list[dict], engine_names: list[str]) -> str:
    """Timing table, log-likelihood table and notes, as text."""
    base_name = GLMMKIT.name
    peers = [name for name in engine_names if name != base_name]
    has_base = base_name in engine_names

    header = ["case", "rows"]
    if has_base:
        header.append("glmmkit")
    for name in peers:
        header += [name] + ([f"{name}/glmmkit"] if has_base else [])
    time_rows = []
    for rec in records:
        res = rec["results"]
        row = [rec["name"], str(rec["rows"] or "-")]
        if has_base:
            row.append(_time_cell(res[base_name]))
        for name in peers:
            row.append(_time_cell(res[name]))
            if has_base:
                row.append(_ratio_cell(res[name], res[base_name]))
        time_rows.append(row)

    ll_header = ["case"] + [f"{name} logLik" for name in engine_names]
    if has_base:
        ll_header += [f"glmmkit-{name}" for name in peers]
    ll_rows = []
    for rec in records:
        res = rec["results"]
        row = [rec["name"]] + [_loglik_cell(res[name]) for name in engine_names]
        if has_base:
            row += [_diff_cell(res[base_name], res[name]) for name in peers]
        ll_rows.append(row)

    notes = [f"{rec['name']} data: {rec['data_source'] or 'not loaded'}" for rec in records]
    for rec in records:
        for name in engine_names:
            result = rec["results"][name]
            if result.detail:
                notes.append(f"{rec['name']} / {name}: {result.detail}")
            for message in result.messages:
                notes.append(f"{rec['name']} / {name} (warm-up fit said): {message}")

    parts = [
        "Median fit time (ratio = peer / glmmkit; above 1 means glmmkit is faster)",
        _table(header, time_rows),
        "",
        "Log-likelihood (REML log-likelihood for REML fits) and differences",
        _table(ll_header, ll_rows),
    ]
    parts += ["", "Notes", *(f"- {note}" for note in notes)]
    return "\n".join(parts)


def environment(engines: list, args: argparse.Namespace) -> dict[str, Any]:
    """Versions, thread settings and timing protocol, for the header and the JSON."""
    meta: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "threads": {name: os.environ.get(name) for name in _peers.THREAD_VARS},
        "repeats": args.repeats,
        "repeats_large": args.repeats_large,
        "versions": {},
    }
    for engine in engines:
        meta["versions"][engine.name] = engine.version()
        if isinstance(engine, _peers.Lme4Engine):
            meta["r"] = engine.info()
    spec = importlib.util.find_spec(GLMMKIT.module) if GLMMKIT in engines else None
    if spec is not None:
        meta["glmmkit_path"] = spec.origin or str(list(spec.submodule_search_locations or []))
    return meta


def header_text(meta: dict[str, Any], threads: int) -> str:
    """Human-readable summary of :func:`environment`."""
    versions = ", ".join(f"{k} {v or 'not installed'}" for k, v in meta["versions"].items())
    lines = [
        f"glmmkit LMM benchmark, {meta['date']}",
        f"Python {meta['python']} (numpy {meta['numpy']}, pandas {meta['pandas']}) "
        f"on {meta['platform']}, {meta['cpu_count']} CPUs",
        f"engines: {versions}",
    ]
    if "glmmkit_path" in meta:
        lines.append(f"glmmkit from {meta['glmmkit_path']}")
    r_info = meta.get("r")
    if r_info:
        lines.append(f"{r_info.get('r', 'R')}; BLAS {r_info.get('blas')}")
    lines += [
        f"threads pinned to {threads} for this process and R "
        f"({', '.join(_peers.THREAD_VARS)})",
        f"timing: 1 warm-up fit, then median of {meta['repeats']} fits "
        f"({meta['repeats_large']} for large cases); lme4 timed inside R around "
        "lmer() with the data loaded; glmm with satterthwaite=False, wald_se='rx'",
    ]
    return "\n".join(lines)


def _pin_threads(threads: int, argv: list[str]) -> None:
    """Re-execute this script with `argv` unless every thread variable is `threads`.

    The variables must be set before numpy and the peers' native libraries
    load, so they cannot be changed from inside a running process.
    """
    wanted = _peers.thread_env(threads)
    if all(os.environ.get(k) == v for k, v in wanted.items()):
        return
    command = [sys.executable, str(Path(__file__).resolve()), *argv]
    os.execve(sys.executable, command, {**os.environ, **wanted})


def _to_json(records: list[dict], meta: dict[str, Any]) -> dict[str, Any]:
    cases = []
    for rec in records:
        entry = {k: v for k, v in rec.items() if k != "results"}
        entry["engines"] = {k: r.to_json() for k, r in rec["results"].items()}
        cases.append(entry)
    return {"meta": meta, "cases": cases}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    all_engines = [GLMMKIT.name, _peers.Lme4Engine.name, *(p.name for p in _peers.PEERS)]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed fits per case (default 5)")
    parser.add_argument(
        "--repeats-large", type=int, default=2,
        help="timed fits for large cases such as InstEval (default 2)",
    )
    parser.add_argument(
        "--cases", default=",".join(c["name"] for c in LMM_CASES),
        help="comma-separated case names (default: all)",
    )
    parser.add_argument(
        "--engines", default=",".join(all_engines),
        help=f"comma-separated engines (default: {','.join(all_engines)})",
    )
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP/rayon threads (default 1)")
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR,
        help="folder with the reference CSVs, used when glmmkit does not bundle a data set",
    )
    parser.add_argument(
        "--simulate-script", type=Path, default=None,
        help="simulate.py for simulated sets (default: <data-dir>/../simulate.py)",
    )
    parser.add_argument("--r-timeout", type=float, default=600.0, help="seconds per R case (default 600)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")
    args = parser.parse_args(argv)
    args.cases = args.cases.split(",")
    args.engines = args.engines.split(",")
    unknown = set(args.cases) - {c["name"] for c in LMM_CASES}
    unknown |= set(args.engines) - set(all_engines)
    if unknown:
        parser.error(f"unknown case or engine: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the selected cases on the selected engines and print the tables."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    _pin_threads(args.threads, argv)
    _use_source_tree()
    available = {
        GLMMKIT.name: GLMMKIT,
        _peers.Lme4Engine.name: _peers.Lme4Engine(threads=args.threads, timeout=args.r_timeout),
        **{p.name: p for p in _peers.PEERS},
    }
    engines = [available[name] for name in available if name in args.engines]
    data_dir = args.data_dir.resolve()
    sources = DataSources(
        data_dir=data_dir,
        simulate_script=args.simulate_script or data_dir.parent / "simulate.py",
    )
    meta = environment(engines, args)
    print(header_text(meta, args.threads), end="\n\n", flush=True)

    records = []
    for case in LMM_CASES:
        if case["name"] in args.cases:
            repeats = args.repeats_large if case.get("large") else args.repeats
            records.append(run_case(case, engines, sources, repeats))
    print(render(records, [e.name for e in engines]))
    if args.json:
        args.json.write_text(json.dumps(_to_json(records, meta), indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
