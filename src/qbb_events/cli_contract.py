"""The one command-line contract of ``qbb-events`` and ``qbb-replay``.

Every subcommand of both tools keeps the same promises (``docs/cli.md``):

- exit status `EXIT_OK` (0) when all is well, `EXIT_PROBLEM` (1) when a check
  found a problem, `EXIT_USAGE` (2) for a usage error or input that cannot be
  read at all;
- ``--json`` prints one document whose shape is versioned (`json_document`)
  and described by a JSON Schema in ``docs/schemas/``;
- a progress bar, with counts, only on a terminal (`progress`);
- bad input is one line on stderr saying what is wrong and where, never a
  traceback unless ``--debug`` (`ContractGroup`);
- tables never cut the column a person needs (a path, a quantum id) at 80
  columns (`print_table`).

The machinery lives here, in the library, so that both tools (and commands
other modules add to ``qbb-events``) share one implementation.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, TypeVar

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from .errors import QbbEventsError

__all__ = [
    "EXIT_OK",
    "EXIT_PROBLEM",
    "EXIT_USAGE",
    "JSON_SHAPE_VERSION",
    "ContractGroup",
    "InputError",
    "emit_json",
    "json_document",
    "one_line",
    "print_table",
    "progress",
]

EXIT_OK: Final = 0
"""Exit status when all is well."""
EXIT_PROBLEM: Final = 1
"""Exit status when a check found a problem."""
EXIT_USAGE: Final = 2
"""Exit status for a usage error or input that cannot be read at all."""
JSON_SHAPE_VERSION: Final = 1
"""Version of every ``--json`` shape; bumped when a shape changes incompatibly."""

_T = TypeVar("_T")


class InputError(click.ClickException):
    """Input that cannot be read at all: exits `EXIT_USAGE` with a one-line message.

    Parameters
    ----------
    message : `str`
        What is wrong and where (file, line or ``seq``).
    """

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


def one_line(message: object) -> str:
    """Return a message, or an exception with its type, on a single line.

    Parameters
    ----------
    message : `object`
        A string or an exception.

    Returns
    -------
    line : `str`
        Its text with every run of whitespace (newlines included) made one space.
    """
    text = (
        f"{type(message).__name__}: {message}"
        if isinstance(message, BaseException)
        else str(message)
    )
    return " ".join(text.split())


class ContractGroup(click.Group):
    """A click group that keeps the contract for every subcommand it holds.

    It adds ``--debug`` to the group. An error of the library
    (`QbbEventsError`) or of the operating system (`OSError`) escaping a
    subcommand becomes one line on stderr and exit `EXIT_USAGE`; with
    ``--debug`` its traceback is printed first (the exit status stays the same).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(
            click.Option(
                ["--debug"],
                is_flag=True,
                expose_value=False,
                is_eager=True,
                callback=_remember_debug,
                help="Show the traceback of an unexpected error.",
            )
        )

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand, turning library and OS errors into one-line messages."""
        try:
            return super().invoke(ctx)
        except InputError as err:
            if ctx.meta.get("qbb.debug") and err.__cause__ is not None:
                _print_traceback(err.__cause__)
            raise
        except (QbbEventsError, OSError) as err:
            if ctx.meta.get("qbb.debug"):
                _print_traceback(err)
            raise InputError(one_line(err)) from err


def _print_traceback(err: BaseException) -> None:
    click.echo("".join(traceback.format_exception(err)), err=True, nl=False)


def _remember_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    ctx.meta["qbb.debug"] = value


def json_document(tool: str, command: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Return the versioned ``--json`` document of one command.

    Parameters
    ----------
    tool : `str`
        ``qbb-events`` or ``qbb-replay``.
    command : `str`
        The subcommand, e.g. ``verify``.
    payload : `~collections.abc.Mapping`
        The command's own fields.

    Returns
    -------
    document : `dict`
        ``{"tool", "command", "version", **payload}``; its JSON Schema is
        ``docs/schemas/<tool>-<command>.schema.json``.
    """
    return {"tool": tool, "command": command, "version": JSON_SHAPE_VERSION, **payload}


def emit_json(tool: str, command: str, payload: Mapping[str, Any]) -> None:
    """Print `json_document` on stdout, indented, keys sorted.

    Parameters
    ----------
    tool : `str`
        ``qbb-events`` or ``qbb-replay``.
    command : `str`
        The subcommand.
    payload : `~collections.abc.Mapping`
        The command's fields; UUIDs and datetimes are written as strings.
    """
    document = json_document(tool, command, payload)
    text = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    click.echo(text)


def progress(
    items: Iterable[_T],
    *,
    total: int | None,
    label: str,
    enabled: bool | None = None,
    weight: Callable[[_T], int] | None = None,
) -> Iterator[_T]:
    """Yield ``items``, drawing a progress bar with counts on a terminal.

    Parameters
    ----------
    items : `~collections.abc.Iterable`
        The work, one item per step.
    total : `int` or `None`
        How many steps there are, if known.
    label : `str`
        What is being done, e.g. ``verifying``.
    enabled : `bool`, optional
        Force the bar on or off; by default it is drawn only when stderr is a
        terminal, so pipes and logs stay clean.
    weight : callable, optional
        How many steps an item counts for (a batch of logs counts for its
        length); one each by default.

    Yields
    ------
    item
        Each item of ``items``.
    """
    console = Console(stderr=True)
    if not (console.is_terminal if enabled is None else enabled):
        yield from items
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=total)
        for item in items:
            yield item
            bar.advance(task, 1 if weight is None else weight(item))


def print_table(
    console: Console,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    key: int = 0,
    title: str | None = None,
) -> None:
    """Print rows as a table whose ``key`` column is never cut.

    Parameters
    ----------
    console : `rich.console.Console`
        Where to print; its width decides the layout.
    columns : `~collections.abc.Sequence` [`str`]
        Column headers.
    rows : `~collections.abc.Sequence` [`~collections.abc.Sequence` [`str`]]
        The cells, as text.
    key : `int`, optional
        Index of the column a person needs whole: a log's path, a quantum id.
    title : `str`, optional
        A title above the table.

    Notes
    -----
    The key column is never wrapped; the others fold. When the key values
    are too long to leave the other columns room (a deep path in 80
    columns), each row is printed as a block instead: the key on a line of
    its own, then one indented ``header: value`` line per other column.
    """
    widest = max([len(columns[key]), *(len(row[key]) for row in rows)])
    # Each other column needs a few characters and three of border/padding.
    needed = widest + 4 + sum(min(8, len(c)) + 3 for i, c in enumerate(columns) if i != key)
    if needed <= console.width:
        table = Table(title=title)
        for index, header in enumerate(columns):
            if index == key:
                table.add_column(header, no_wrap=True, min_width=widest)
            else:
                table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        console.print(table)
        return
    if title:
        console.print(title)
    for row in rows:
        console.print(row[key], soft_wrap=True, highlight=False, markup=False)
        for index, header in enumerate(columns):
            if index != key:
                console.print(f"  {header}: {row[index]}", highlight=False, markup=False)
