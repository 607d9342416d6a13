"""Machinery shared by the benchmark scripts (``bench_lmm.py``, ``bench_glmm.py``).

Data loaders (bundled/package data sets and sets regenerated with the reference
``simulate.py``), the per-case runner, the text tables, the run header, the
JSON layout, thread pinning and the command-line options every script takes.
The engines themselves live in ``_peers.py``.
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
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

import _peers
from _peers import GLMMKIT, EngineResult

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
    cache_dir : Path or None
        Folder where generated CSVs are kept and reused (named after generator
        and options); None regenerates every time in a temporary folder.
    """

    data_dir: Path
    simulate_script: Path
    cache_dir: Path | None = None


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
    """Loader for an R package data set (sleepstudy, Penicillin, cbpp, ...).

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


R_DATASETS_DIR = REPO_ROOT / "tests" / "data" / "r_datasets"


def r_dataset(name: str, prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> Loader:
    """Loader for a data set exported from R into ``tests/data/r_datasets`` (grouseticks, VerbAgg, Owls).

    Parameters
    ----------
    name : str
        File stem and key in that folder's ``datasets.json`` (factor levels in R's order).
    prepare : callable, optional
        Applied to the frame after reading (e.g. a 0/1 response every engine reads alike).

    Returns
    -------
    callable
        ``load(sources) -> (DataFrame, source description)``.
    """

    def load(sources: DataSources) -> tuple[pd.DataFrame, str]:
        path = R_DATASETS_DIR / f"{name}.csv"
        spec = _dataset_spec(name, R_DATASETS_DIR)
        if not path.is_file() or spec is None:
            raise FileNotFoundError(f"{name}: no {path} with datasets.json")
        df = _read_with_spec(path, spec)
        return (df if prepare is None else prepare(df)), str(path)

    return load


def _read_simulated(path: Path) -> pd.DataFrame:
    """Read a simulated CSV; string columns become categoricals with sorted levels."""
    df = pd.read_csv(path)
    for name in df.columns:
        if not pd.api.types.is_numeric_dtype(df[name]):
            df[name] = pd.Categorical(df[name], categories=sorted(df[name].unique()))
    return df


def simulated(generator: str, **params: int) -> Loader:
    """Loader that regenerates a data set with the reference ``simulate.py``.

    String columns become categoricals with sorted levels, as R's ``factor()``
    makes them (the generators zero-pad labels, so this is also numeric order).
    With ``sources.cache_dir`` set, the CSV is kept there under a name made of
    the generator and its options and reused by later runs (``simulate.py`` is
    deterministic, so a cached file equals a regenerated one).

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
    description = f"simulate.py {generator} {' '.join(options)}"
    cache_name = "_".join([generator, *(f"{k}{v}" for k, v in params.items())]) + ".csv"

    def generate(script: Path, out: Path) -> None:
        subprocess.run(
            [sys.executable, str(script), generator, *options, "--out", str(out)],
            check=True, capture_output=True, text=True,
        )

    def load(sources: DataSources) -> tuple[pd.DataFrame, str]:
        script = sources.simulate_script
        if sources.cache_dir is not None:
            cached = sources.cache_dir / cache_name
            if cached.is_file():
                return _read_simulated(cached), f"{description} (cached {cached})"
        if not script.is_file():
            raise FileNotFoundError(f"{generator}: simulate script {script} not found")
        if sources.cache_dir is not None:
            sources.cache_dir.mkdir(parents=True, exist_ok=True)
            partial = cached.with_suffix(f".partial{os.getpid()}.csv")
            try:
                generate(script, partial)
                partial.replace(cached)  # atomic: a killed run leaves no half file
            finally:
                partial.unlink(missing_ok=True)
            return _read_simulated(cached), f"{description} (generated into {cached})"
        with tempfile.TemporaryDirectory(prefix="glmmkit-bench-") as tmp:
            out = Path(tmp) / f"{generator}.csv"
            generate(script, out)
            df = _read_simulated(out)
        return df, description

    return load


def use_source_tree() -> None:
    """Make ``src/glmmkit`` importable when glmmkit is not installed."""
    src = REPO_ROOT / "src"
    if importlib.util.find_spec("glmmkit") is None and (src / "glmmkit").is_dir():
        sys.path.insert(0, str(src))


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------


def run_case(
    case: dict,
    engines: list,
    sources: DataSources,
    repeats: int,
    skip: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Load a case's data and run every engine on it.

    Parameters
    ----------
    case : dict
        ``name``, ``loader``, ``formula``, ``family``, ``method``.
    engines : list
        Engines with ``name`` and ``run(case, data, repeats)``.
    sources : DataSources
    repeats : int
        Timed fits after the warm-up fit.
    skip : dict, optional
        Engine name -> reason, for engines not to run on this case; their
        result is ``n/a (reason)``.

    Returns
    -------
    dict
        ``name``, ``formula``, ``family``, ``method``, ``rows``, ``data_source``,
        ``repeats`` and ``results`` (engine name -> :class:`EngineResult`); on
        a loading error ``rows`` is None and every result carries the reason.
    """
    skip = skip or {}
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
        if engine.name in skip:
            record["results"][engine.name] = EngineResult.unavailable(skip[engine.name])
            continue
        print(f"  {case['name']}: {engine.name} ...", file=sys.stderr, flush=True)
        record["results"][engine.name] = engine.run(case, data, repeats)
    return record


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    """Milliseconds below one second, seconds above, three significant digits."""
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def _na(result: EngineResult) -> str:
    return f"n/a ({result.reason})"


def _time_cell(result: EngineResult) -> str:
    return fmt_time(result.median) if result.ok else _na(result)


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


def table(header: list[str], rows: list[list[str]]) -> str:
    """Plain-text table with left-aligned columns."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
        for row in [header, [""] * len(header), *rows]
    ]
    lines[1] = "  ".join("-" * w for w in widths)
    return "\n".join(lines)


def render(
    records: list[dict],
    engine_names: list[str],
    loglik_title: str = "Log-likelihood and differences",
    extra_sections: Sequence[str] = (),
    extra_notes: Sequence[str] = (),
) -> str:
    """Timing table, log-likelihood table, optional extra sections and notes, as text."""
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
    notes += extra_notes

    parts = [
        "Median fit time (ratio = peer / glmmkit; above 1 means glmmkit is faster)",
        table(header, time_rows),
        "",
        loglik_title,
        table(ll_header, ll_rows),
    ]
    for section in extra_sections:
        parts += ["", section]
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


def header_text(meta: dict[str, Any], threads: int, title: str, protocol: str) -> str:
    """Human-readable summary of :func:`environment`.

    Parameters
    ----------
    meta : dict
        From :func:`environment`.
    threads : int
        The pinned thread count.
    title : str
        First line, before the date (e.g. ``"glmmkit LMM benchmark"``).
    protocol : str
        Appended to the timing line: how lme4 is timed and the peers' options.
    """
    versions = ", ".join(f"{k} {v or 'not installed'}" for k, v in meta["versions"].items())
    lines = [
        f"{title}, {meta['date']}",
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
        f"({meta['repeats_large']} for large cases); {protocol}",
    ]
    return "\n".join(lines)


def pin_threads(threads: int, script: str | Path, argv: list[str]) -> None:
    """Re-execute `script` with `argv` unless every thread variable is `threads`.

    The variables must be set before numpy and the peers' native libraries
    load, so they cannot be changed from inside a running process.
    """
    wanted = _peers.thread_env(threads)
    if all(os.environ.get(k) == v for k, v in wanted.items()):
        return
    command = [sys.executable, str(Path(script).resolve()), *argv]
    os.execve(sys.executable, command, {**os.environ, **wanted})


def to_json(records: list[dict], meta: dict[str, Any]) -> dict[str, Any]:
    """``{"meta": ..., "cases": [...]}`` with every engine result serialised."""
    cases = []
    for rec in records:
        entry = {k: v for k, v in rec.items() if k != "results"}
        entry["engines"] = {k: r.to_json() for k, r in rec["results"].items()}
        cases.append(entry)
    return {"meta": meta, "cases": cases}


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def all_engine_names() -> list[str]:
    """Every engine a script can run, in table order."""
    return [GLMMKIT.name, _peers.Lme4Engine.name, *(p.name for p in _peers.PEERS)]


def add_common_arguments(
    parser: argparse.ArgumentParser,
    cases: list[dict],
    *,
    repeats_large_default: int,
    repeats_large_help: str,
    r_timeout_default: float,
) -> None:
    """Options every benchmark script takes (repeats, cases, engines, threads, data, JSON)."""
    engines = all_engine_names()
    parser.add_argument("--repeats", type=int, default=5, help="timed fits per case (default 5)")
    parser.add_argument(
        "--repeats-large", type=int, default=repeats_large_default, help=repeats_large_help
    )
    parser.add_argument(
        "--cases", default=",".join(c["name"] for c in cases),
        help="comma-separated case names (default: all)",
    )
    parser.add_argument(
        "--engines", default=",".join(engines),
        help=f"comma-separated engines (default: {','.join(engines)})",
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
    parser.add_argument(
        "--r-timeout", type=float, default=r_timeout_default,
        help=f"seconds per R case (default {r_timeout_default:g})",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")


def check_common_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace, cases: list[dict]
) -> None:
    """Split ``--cases``/``--engines`` into lists; stop on unknown names or
    on fewer than one timed fit."""
    if min(args.repeats, args.repeats_large) < 1:
        parser.error("--repeats and --repeats-large must be at least 1")
    args.cases = args.cases.split(",")
    args.engines = args.engines.split(",")
    unknown = set(args.cases) - {c["name"] for c in cases}
    unknown |= set(args.engines) - set(all_engine_names())
    if unknown:
        parser.error(f"unknown case or engine: {', '.join(sorted(unknown))}")


def make_engines(args: argparse.Namespace) -> list:
    """The engines named by ``--engines``, in table order."""
    available = {
        GLMMKIT.name: GLMMKIT,
        _peers.Lme4Engine.name: _peers.Lme4Engine(threads=args.threads, timeout=args.r_timeout),
        **{p.name: p for p in _peers.PEERS},
    }
    return [available[name] for name in available if name in args.engines]


def make_sources(args: argparse.Namespace, cache_dir: Path | None = None) -> DataSources:
    """:class:`DataSources` from ``--data-dir`` and ``--simulate-script``."""
    data_dir = args.data_dir.resolve()
    return DataSources(
        data_dir=data_dir,
        simulate_script=args.simulate_script or data_dir.parent / "simulate.py",
        cache_dir=cache_dir,
    )
