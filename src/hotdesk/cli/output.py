"""Plain aligned text tables and JSON output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import typer


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell and separated by two spaces (kubectl style)."""
    cells = [[format_cell(value) for value in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = [headers, *cells]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def format_cell(value: Any) -> str:
    """A value as a table cell: ``-`` for nothing, yes/no for booleans."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str) -> None:
    """Print a table, or ``empty`` (on stderr) when there are no rows."""
    if not rows:
        typer.echo(empty, err=True)
        return
    typer.echo(render_table(headers, rows))


def print_json(data: Any) -> None:
    """Print data as indented JSON."""
    typer.echo(json.dumps(data, indent=2, default=str))
