"""Path templates: where a dataset's artifact lives, predicted from its ref alone."""

from __future__ import annotations

import re
import string
from typing import Final

from ..errors import InvalidDefinitionError, PathEscapeError
from ..model import DatasetRef

__all__ = ["DEFAULT_TEMPLATE", "PathTemplate"]

DEFAULT_TEMPLATE: Final = "{run}/{dataset_type}/{data_id}"
"""Default template: ``run/type/key1=value1/key2=value2`` plus the formatter's extension."""

_INTEGER = re.compile(r"^[+-]?[0-9]+\Z")


def _render_value(value: int | str) -> str:
    # 1 and "1" are different data IDs: a string that reads as an integer is
    # quoted so the two never share a path. A string that itself starts with a
    # quote gets one more in front, so the rendering stays one-to-one.
    if isinstance(value, str):
        if _INTEGER.match(value):
            return f"'{value}'"
        if value.startswith("'"):
            return f"'{value}"
        return value
    return str(value)


def _check_component(value: str, what: str) -> str:
    if value in {".", ".."} or "/" in value or "\\" in value or "\0" in value:
        raise PathEscapeError(
            f"{what} {value!r} cannot be used in a datastore path: it would name a "
            "directory outside its place, possibly outside the datastore root."
        )
    return value


def _check_run(run: str) -> str:
    parts = run.split("/")
    if run.startswith("/") or "\\" in run or any(p in {"", ".", ".."} for p in parts):
        raise PathEscapeError(
            f"RUN name {run!r} cannot be used in a datastore path: absolute paths and "
            "'.', '..' or empty components could leave the datastore root."
        )
    return run


class PathTemplate:
    """A template over run, dataset type and data ID giving a relative path.

    Parameters
    ----------
    template : `str`
        A `str.format` pattern. Fields: ``{run}``, ``{dataset_type}``,
        ``{id}``, ``{data_id}`` (``key=value`` directories, or ``_`` for an
        empty data ID) and any data-ID key by name. It must use ``{run}``,
        ``{dataset_type}`` and one of ``{data_id}`` or ``{id}``, so that two
        datasets never share a path.

    Raises
    ------
    InvalidDefinitionError
        If the template is malformed or not unique per dataset.

    Notes
    -----
    RUN names may hold ``/`` (``u/someone/run1``); data-ID values may not.
    Every rendered path is checked to stay inside the root: absolute paths,
    ``..`` and ``.`` components are refused with `PathEscapeError`.
    """

    __slots__ = ("_fields", "_template")

    def __init__(self, template: str = DEFAULT_TEMPLATE) -> None:
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as err:
            raise InvalidDefinitionError(f"Malformed path template {template!r}: {err}") from None
        fields = {f for _, f, _, _ in parsed if f is not None}
        if any(spec or conversion for _, f, spec, conversion in parsed if f is not None):
            # A format spec can truncate ("{id:.4}") or pad with anything, which
            # would defeat both uniqueness and the containment checks.
            raise InvalidDefinitionError(
                f"Path template {template!r} may not use format specs or conversions."
            )
        if not {"run", "dataset_type"} <= fields or not fields & {"data_id", "id"}:
            raise InvalidDefinitionError(
                f"Path template {template!r} must use {{run}}, {{dataset_type}} and "
                "{data_id} or {id}, so that every dataset has its own path."
            )
        # The literal parts are checked too: a fixed "." or ".." component would
        # move every path, "{run}/../../{dataset_type}/{id}" out of the root.
        skeleton = "".join(
            literal + ("x" if field is not None else "") for literal, field, _, _ in parsed
        )
        if (
            template.startswith("/")
            or any(not f.isidentifier() for f in fields)
            or any(part in {".", ".."} for part in skeleton.split("/"))
        ):
            raise InvalidDefinitionError(f"Path template {template!r} is not a relative pattern.")
        self._template = template
        self._fields = fields

    @property
    def template(self) -> str:
        """The pattern (`str`)."""
        return self._template

    def format(self, ref: DatasetRef, extension: str) -> str:
        """Return the relative path of a ref's artifact.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.
        extension : `str`
            The formatter's extension, appended to the path.

        Returns
        -------
        path : `str`
            Relative path with ``/`` separators.

        Raises
        ------
        PathEscapeError
            If a value would take the path outside the root.
        InvalidDefinitionError
            If the template names a data-ID key the ref does not have.
        """
        data_id = ref.data_id
        values: dict[str, str] = {}
        for key, value in data_id.items():
            values[key] = _check_component(_render_value(value), f"Data ID value for {key!r}")
        fields = self._fields
        if "data_id" in fields:
            values["data_id"] = "/".join(f"{k}={v}" for k, v in values.items()) or "_"
        values["run"] = _check_run(ref.run)
        values["dataset_type"] = ref.dataset_type.name
        values["id"] = str(ref.id)
        try:
            path = self._template.format_map(values) + extension
            # Whatever the template, the result must be a plain relative path.
            if path.startswith("/") or any(p in {"", ".", ".."} for p in path.split("/")):
                raise PathEscapeError(
                    f"Path {path!r} for {ref!r} is not a plain relative path inside the root."
                )
        except KeyError as err:
            raise InvalidDefinitionError(
                f"Path template {self._template!r} names {err} but the {ref.dataset_type.name!r} "
                f"data ID has only {sorted(data_id)}."
            ) from None
        return path
