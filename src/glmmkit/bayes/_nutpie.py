"""nutpie engine of glmmkit.bayes.sampler (the ``glmmkit[bayes]`` extra).

nutpie's public entry points compile PyMC or Stan models; glmmkit hands it its own log density
through two semi-public layers of nutpie (checked against nutpie 0.16):

- ``nutpie.compiled_pyfunc.from_pyfunc``: a Python callable; nutpie's Rust threads take the GIL
  for every gradient, so chains only overlap while the callable is inside numpy.
- ``nutpie._lib.LogpFunc`` / ``ExpandFunc`` / ``PyMcModel`` / ``PySampler.from_pymc``: C
  callbacks, here a numba ``cfunc`` wrapping the model's ``numba_logp_and_grad``.  No GIL: the
  chains run truly in parallel.  The data arrays reach the callback through a table of
  (address, shape) integers, so the callback is compiled once per function and array layout, not
  per data set.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

import nutpie
from nutpie import _lib
from nutpie.compiled_pyfunc import from_pyfunc
from nutpie.sample import CompiledModel

from glmmkit.bayes.sample_result import _STAT_KEYS, SampleResult

__all__ = ["run"]

_NAME = "x"


def _init_fn(x0s):
    """A starting-point function for nutpie: one of the given starts, chosen by the chain's own seed
    (nutpie's chains ask from their threads in no fixed order, so handing the starts out in turn
    would make the draws of one seed depend on thread timing; two chains may share a start, as with
    Stan's ``init = 0``, and still differ by their random streams)."""

    def init(seed):
        return np.array(x0s[int(seed) % len(x0s)], dtype=np.float64)

    return init


def _python_model(f, x0s):
    dim = x0s.shape[1]

    def make_logp_fn():
        def logp(x, **_):
            val, grad = f(x)
            return float(val), np.asarray(grad, dtype=np.float64)

        return logp

    def make_expand_fn(seed1, seed2, chain):
        def expand(x, **_):
            return {_NAME: np.array(x, dtype=np.float64)}

        return expand

    return from_pyfunc(dim, make_logp_fn, make_expand_fn, [np.dtype("float64")], [(dim,)], [_NAME],
                       make_initial_point_fn=_init_fn(x0s))


# --------------------------------------------------------------------------------------------
# numba C callback
# --------------------------------------------------------------------------------------------

_CFUNC_CACHE: dict = {}
_CFUNC_LOCK = threading.Lock()


def _layout(arrays):
    return tuple((a.dtype.str, a.ndim) for a in arrays)


def _table(arrays, dim):
    """int64 table read by the callback: dim, then per array its address and shape."""
    rows = [dim]
    for a in arrays:
        rows.append(a.ctypes.data)
        rows.extend(a.shape)
    return np.array(rows, dtype=np.int64)


_SIGS = """
logp_sig = types.int64(types.uint64, types.CPointer(types.double), types.CPointer(types.double),
                       types.CPointer(types.double), types.voidptr)
expand_sig = types.int64(types.uint64, types.uint64, types.CPointer(types.double),
                         types.CPointer(types.double), types.voidptr)
"""

_INTRINSIC = """
@intrinsic
def as_pointer(typingctx, address):
    sig = types.voidptr(address)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return sig, codegen
"""


def _callback_source(layout, cache: bool) -> str:
    """The two cfuncs' source for arrays of ``layout`` (``fn`` and ``np`` are names of the module)."""
    lines, names, pos = [], [], 1
    for k, (dt, ndim) in enumerate(layout):
        shape = ", ".join(f"t[{pos + 1 + j}]" for j in range(ndim)) + ("," if ndim == 1 else "")
        lines.append(f"    a{k} = numba.carray(as_pointer(t[{pos}]), ({shape}), np.dtype({dt!r}))")
        names.append(f"a{k}")
        pos += 1 + ndim
    args = "".join(", " + n for n in names)
    body = "\n".join(lines)
    flag = ", cache=True" if cache else ""
    return f"""
# the logp callback reads its table through a typed pointer: carray of voidptr needs a dtype
@numba.cfunc(logp_sig, error_model="numpy"{flag})
def logp_c(dim, x_, out_, logp_, table_):
    t = numba.carray(table_, ({pos},), np.int64)
    if dim != t[0]:
        return -1
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    logp = numba.carray(logp_, (1,))
{body}
    val, grad = fn(x{args})
    logp[0] = val
    for i in range(dim):
        out[i] = grad[i]
    if not np.isfinite(val):
        return 4
    for i in range(dim):
        if not np.isfinite(grad[i]):
            return 3
    return 0


@numba.cfunc(expand_sig{flag})
def expand_c(dim, n_out, x_, out_, table_):
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (n_out,))
    for i in range(dim):
        out[i] = x[i]
    return 0
"""


def _cached_module(fn, layout):
    """The callbacks as a module file in a cache folder, so that numba caches their machine code
    (building them in memory costs ~0.75 s in every process); None when ``fn`` cannot be imported by
    name from there or the folder is not writable (the in-memory build is then used)."""
    import hashlib
    import importlib.util
    import os
    import sys
    import tempfile
    from pathlib import Path

    py = getattr(fn, "py_func", fn)
    module, name = getattr(py, "__module__", None), getattr(py, "__name__", None)
    if not module or module == "__main__" or not name:
        return None
    src = ("import numba\nimport numpy as np\nfrom numba import types\nfrom numba.core import cgutils\n"
           f"from numba.extending import intrinsic\nfrom {module} import {name} as fn\n"
           + _SIGS + _INTRINSIC + _callback_source(layout, cache=True))
    # numba's cache of the callbacks checks their own file only, and they inline ``fn``: the key carries
    # the source of fn's module, so a changed kernel never runs from a stale callback
    import inspect

    try:
        kernel_src = Path(inspect.getsourcefile(py)).read_bytes()
    except (OSError, TypeError):
        return None
    key = hashlib.sha1(src.encode() + kernel_src).hexdigest()[:16]
    base = os.environ.get("GLMMKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "glmmkit")
    try:
        folder = Path(base) / "nutpie_callbacks"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"cb_{key}.py"
        if not path.exists():  # written whole, then renamed: another process never reads half a file
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                fh.write(src)
            os.replace(tmp, path)
        name = f"glmmkit_nutpie_cb_{key}"
        if name in sys.modules:
            mod = sys.modules[name]
        else:  # registered first: numba's cache rebuilds the functions' environment by importing this name
            spec = importlib.util.spec_from_file_location(name, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            try:
                spec.loader.exec_module(mod)
            except Exception:
                del sys.modules[name]
                raise
        return mod.logp_c, mod.expand_c
    except Exception:  # an unwritable cache or a function numba cannot cache: build in memory
        return None


def _compile_callbacks(fn, layout):
    """numba cfuncs (logp, expand) for ``fn(x, *arrays)`` with arrays of ``layout``: from a cached
    module file where possible, else built in memory."""
    key = (fn, layout)
    with _CFUNC_LOCK:
        if key in _CFUNC_CACHE:
            return _CFUNC_CACHE[key]
    pair = _cached_module(fn, layout)
    if pair is None:
        import numba
        from numba import types
        from numba.core import cgutils
        from numba.extending import intrinsic

        env: dict[str, Any] = {"numba": numba, "np": np, "fn": fn, "types": types, "cgutils": cgutils,
                               "intrinsic": intrinsic}
        exec(compile(_SIGS + _INTRINSIC + _callback_source(layout, cache=False),
                     "<glmmkit.bayes.nutpie-callback>", "exec"), env)
        pair = (env["logp_c"], env["expand_c"])
    with _CFUNC_LOCK:
        _CFUNC_CACHE[key] = pair
    return pair


@dataclass(frozen=True)
class _CallbackModel(CompiledModel):
    """A nutpie model made of C callbacks (numba cfuncs) and their data table."""

    logp_c: Any = None
    expand_c: Any = None
    table: Any = None
    arrays: tuple = ()
    init_fn: Any = None
    dim: int = 0

    @property
    def n_dim(self):
        return self.dim

    @property
    def shapes(self):
        return {_NAME: (self.dim,)}

    @property
    def coords(self):
        return {}

    def _make_model(self, init_mean):
        expand = _lib.ExpandFunc(self.dim, self.dim, self.expand_c.address, self.table.ctypes.data, self)
        logp = _lib.LogpFunc(self.logp_c.address, self.table.ctypes.data, self)
        sizes = {f"{_NAME}_dim_0": self.dim}
        variables = _lib.PyVariable.new_variables([_NAME], ["float64"], [(self.dim,)], sizes,
                                                  {_NAME: (f"{_NAME}_dim_0",)})
        return _lib.PyMcModel(logp, expand, variables, self.dim, sizes, {}, self.init_fn, None)

    def _make_sampler(self, settings, init_mean, cores, progress_type, store):
        return _lib.PySampler.from_pymc(settings, cores, self._make_model(init_mean), progress_type, store)


def _numba_model(f, x0s):
    fn = getattr(f, "numba_logp_and_grad", None)
    data = getattr(f, "numba_data", None)
    if fn is None or data is None:
        return None
    arrays = tuple(np.ascontiguousarray(a) for a in data)
    logp_c, expand_c = _compile_callbacks(fn, _layout(arrays))
    dim = x0s.shape[1]
    return _CallbackModel(logp_c=logp_c, expand_c=expand_c, table=_table(arrays, dim), arrays=arrays,
                          init_fn=_init_fn(x0s), dim=dim, dims={})


# --------------------------------------------------------------------------------------------


def _column(batch, name):
    col = batch.column(name)
    return np.asarray(col.to_numpy() if hasattr(col, "to_numpy") else col)


def run(f, x0s, *, draws, tune, chains, seed, target_accept, max_treedepth, cores, progress):
    """Run nutpie on ``f`` and convert its trace into a :class:`SampleResult`.

    Parameters
    ----------
    f : callable
        ``x -> (log density, gradient)``, optionally with ``numba_logp_and_grad`` and
        ``numba_data`` (see :func:`glmmkit.bayes.sampler.sample`).
    x0s : ndarray, shape (chains, dim)
        Starting points.
    draws, tune, chains : int
        Kept draws, warm-up draws and chains.
    seed : int or None
        Seed.
    target_accept : float
        Step-size adaptation target.
    max_treedepth : int
        Largest tree depth.
    cores : int
        Chains run at once (threads).
    progress : bool
        Show nutpie's progress bar.

    Returns
    -------
    SampleResult
        The run, engine ``"nutpie-numba"`` or ``"nutpie"``.
    """
    model = _numba_model(f, x0s)
    engine = "nutpie-numba"
    if model is None:
        model = _python_model(f, x0s)
        engine = "nutpie"
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    trace = nutpie.sample(model, draws=draws, tune=tune, chains=chains, cores=cores, seed=int(seed),
                          progress_bar=progress, return_raw_trace=True, save_warmup=True,
                          target_accept=target_accept, maxdepth=max_treedepth)
    draw_batches, stat_batches = trace.get_arrow_trace()
    dim = x0s.shape[1]
    per_chain = []
    for d_b, s_b in zip(draw_batches, stat_batches):
        chain = int(_column(s_b, "chain")[0])
        tuning = _column(s_b, "tuning").astype(bool)
        x = _flat_values(d_b.column(_NAME))
        x = x.reshape(-1, dim)
        st = {
            "diverging": _column(s_b, "diverging").astype(bool),
            "tree_depth": _column(s_b, "depth").astype(np.int64),
            "n_steps": _column(s_b, "n_steps").astype(np.int64),
            "step_size": _column(s_b, "step_size").astype(float),
            "energy": _column(s_b, "energy").astype(float),
            "acceptance": _column(s_b, "mean_tree_accept").astype(float),
        }
        per_chain.append((chain, tuning, x, st, float(_column(s_b, "step_size_bar")[~tuning][0])
                          if (~tuning).any() else float("nan")))
    per_chain.sort(key=lambda r: r[0])
    if len(per_chain) != chains or any(int((~r[1]).sum()) != draws for r in per_chain):
        raise RuntimeError("nutpie returned an incomplete trace (a chain failed); see its messages above")
    kept = [~r[1] for r in per_chain]
    return SampleResult(
        draws=np.stack([r[2][k] for r, k in zip(per_chain, kept)]),
        stats={key: np.stack([r[3][key][k] for r, k in zip(per_chain, kept)]) for key in _STAT_KEYS},
        warmup={"step_size": np.array([r[4] for r in per_chain]), "inv_mass": None, "tune": tune,
                "stats": {key: np.stack([r[3][key][~k] for r, k in zip(per_chain, kept)])
                          for key in _STAT_KEYS}},
        ebfmi=np.empty(0), engine=engine,
    )


def _flat_values(col):
    """The float values of an arrow list column (one list per draw), flattened."""
    import pyarrow

    arr = pyarrow.array(col)
    return np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=float)
