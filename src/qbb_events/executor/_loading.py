"""Finding the pipeline an operator names: the built-in demo or ``package.module:function``."""

from __future__ import annotations

import importlib

from ..errors import InvalidDefinitionError
from ._demo import demo_pipeline
from ._pipeline import Pipeline

__all__ = ["load_pipeline"]


def load_pipeline(spec: str | None) -> Pipeline:
    """Return the pipeline an operator named: ``package.module:function``.

    Parameters
    ----------
    spec : `str` or `None`
        ``package.module:function``, called with no arguments, must return a
        `Pipeline`; `None` or ``demo`` is the built-in demo pipeline.

    Returns
    -------
    pipeline : `Pipeline`
        The pipeline.

    Raises
    ------
    InvalidDefinitionError
        If the spec is malformed, the module or function is missing, or the
        function returns something else.

    Notes
    -----
    Only the operator names what is imported (on the command line, as uvicorn
    names an app): a graph or a log never does.
    """
    if spec is None or spec == "demo":
        return demo_pipeline()
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name.isidentifier():
        raise InvalidDefinitionError(f"--pipeline must be package.module:function, not {spec!r}.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise InvalidDefinitionError(
            f"cannot import pipeline module {module_name!r}: {err}"
        ) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise InvalidDefinitionError(f"module {module_name!r} has no function {func_name!r}.")
    pipeline = func()
    if not isinstance(pipeline, Pipeline):
        raise InvalidDefinitionError(
            f"{spec} returned {type(pipeline).__name__}, not a qbb_events Pipeline."
        )
    return pipeline
