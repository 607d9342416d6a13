"""Fitting on Dask DataFrames (the optional extra ``glmmkit[dask]``).

``lmer(formula, ddf)`` with a Dask DataFrame runs here: one pass over the partitions learns the
schema (types, levels, missing values, ranges; ``schema.py``), a second forms the crossproducts of
[Z X y] per partition with one fixed encoding and sums them (``crossprod.py``); the fit then works on
those sums alone, exactly as the in-memory fit does on the crossproducts of its rows (``lmm.py``).
Per-row results (fitted values, residuals) stay lazy Dask Series.

Named ``distributed`` (not ``dask``) so that it never shadows the ``dask`` package; importing
``glmmkit`` imports none of this, and this module imports Dask only when asked to.
"""

from __future__ import annotations

__all__ = ["is_dask_frame", "require_dask", "lmer_dask", "glmer_dask"]

#: what to install when Dask is missing (named in the ImportError)
EXTRA = "glmmkit[dask]"


def is_dask_frame(obj) -> bool:
    """Whether ``obj`` is a Dask DataFrame, told by its type alone (Dask is not imported).

    Parameters
    ----------
    obj : object
        Anything passed as ``data``.

    Returns
    -------
    bool
        True for a ``dask.dataframe.DataFrame`` (classic or dask-expr).
    """
    mod = type(obj).__module__ or ""
    return (mod.split(".")[0] in ("dask", "dask_expr") and hasattr(obj, "map_partitions")
            and hasattr(obj, "npartitions") and hasattr(obj, "columns"))


def require_dask():
    """Import Dask's dataframe and distributed modules, or say which extra to install.

    Returns
    -------
    tuple of module
        ``(dask, dask.dataframe, distributed)``.

    Raises
    ------
    ImportError
        Dask (with its dataframe and distributed parts) or pyarrow is not installed; the message
        names ``glmmkit[dask]``.
    """
    try:
        import dask
        import dask.dataframe as dd
        import distributed
    except ImportError as exc:
        raise ImportError(f"fitting a Dask DataFrame needs the optional extra: pip install '{EXTRA}' "
                          f"(dask[dataframe,distributed] and pyarrow); {exc}") from exc
    return dask, dd, distributed


def lmer_dask(*args, **kwargs):
    """``lmer`` on a Dask DataFrame (see :func:`glmmkit.distributed.lmm.lmer_dask`).

    Parameters
    ----------
    *args, **kwargs
        As :func:`glmmkit.distributed.lmm.lmer_dask`.

    Returns
    -------
    DistributedLmmFit
        The fit.
    """
    require_dask()
    from .lmm import lmer_dask as run

    return run(*args, **kwargs)


def glmer_dask(*args, **kwargs):
    """``glmer`` on a Dask DataFrame (see :func:`glmmkit.distributed.glmm.glmer_dask`).

    Parameters
    ----------
    *args, **kwargs
        As :func:`glmmkit.distributed.glmm.glmer_dask`.

    Returns
    -------
    DistributedGlmmFit
        The fit.
    """
    require_dask()
    from .glmm import glmer_dask as run

    return run(*args, **kwargs)
