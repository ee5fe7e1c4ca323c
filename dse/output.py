"""One output sink for every command: data to stdout as a table, JSON or CSV; the rest to stderr.

A command of the command layer (dse/commands/) returns a `Shown`: its tables, its JSON document,
its text, and the lines for stderr; `Output.show` prints it in the format asked for.
JSON is printed as a single line, so `... --format json | tail -1` is always parseable.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import sys
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dse.errors import ConfigError, as_cli
from dse.files import publish

MAX_STEM = 100  # file systems take 255 bytes a name; optuna takes study names of 512


def file_stem(name: str) -> str:
    """A study's or run's name as a file name: runs of characters other than letters, digits,
    `.`, `_` and `-` (a `/`, a space) become one `_`, so the file lands where it was asked for.
    A name longer than MAX_STEM keeps its start and a hash of the whole (names stay apart)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    if len(stem) <= MAX_STEM:
        return stem
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{stem[: MAX_STEM - 13]}-{digest}"


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def stderr_console() -> Console:
    return Console(stderr=True)


def note(text: str) -> None:
    """A line for the person at the terminal (stderr): progress, where files went, warnings."""
    sys.stdout.flush()  # after what stdout has so far, where both reach one terminal
    sys.stderr.write(text if text.endswith("\n") else text + "\n")


@dataclass
class Rows:
    """One table of a command's output. With `fit`, a table on the terminal shows the columns
    of `fit` (most important first) that fit its width, in that order, and says which it left
    out (`left_out`: how to get them); CSV and JSON keep every column."""

    rows: list[dict[str, Any]]
    title: str | None = None
    fit: list[str] | None = None
    left_out: str = ""


@dataclass
class Shown:
    """What a command shows. stdout: `text` instead of tables where given (table format),
    `data` as JSON (default: the first table's rows), `csv` instead of the tables' own CSV,
    `footer` after the tables (not in JSON). stderr: `preface` before the data, `notes` after.
    `exit_code`: what the CLI exits with once it has shown them (1: the job ran, but failed)."""

    tables: list[Rows] = field(default_factory=list)
    data: Any = None
    text: str | None = None
    csv: str | None = None
    footer: str | None = None
    preface: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    exit_code: int = 0


class Output:
    def __init__(self, fmt: Format = Format.table):
        self.format = fmt
        # Piped output gets a wide console (tables are data, not to be squeezed into 80
        # columns) unless COLUMNS says how wide.
        wide = sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit()
        self.console = Console(soft_wrap=True, width=None if wide else 160)

    def json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, default=str) + "\n")
        sys.stdout.flush()

    def table(self, table: Rows) -> None:
        """A table; on the terminal, a fitted one keeps the columns that fit its width."""
        if self.format is not Format.table or table.fit is None:
            self.rows(table.rows, table.title)
            return
        keep = fitting_columns(table.rows, table.fit, self.console.width)
        shown = [{c: _short(r[c]) for c in keep if c in r} for r in table.rows]
        self.rows(shown, table.title)
        dropped = [c for c in table.fit if c not in keep]
        if dropped:
            how = f"; {table.left_out}" if table.left_out else ""
            note(as_cli(f"{len(dropped)} more columns: {', '.join(dropped)}{how}"))

    def rows(self, rows: list[dict[str, Any]], title: str | None = None, data: Any = None) -> None:
        """Rows as a table or CSV; as JSON, `data` (default: the rows) on one line."""
        if self.format is Format.json:
            self.json(rows if data is None else data)
        elif self.format is Format.csv:
            sys.stdout.write(csv_text(rows))
        else:
            # names and values are text, not rich markup: a study named "[/]" prints as such
            table = Table(title=escape(title) if title else title, title_justify="left")
            header = columns(rows)
            for column in header:
                table.add_column(
                    escape(column), justify="right" if _numeric(rows, column) else "left"
                )
            for row in rows:
                table.add_row(*(escape(_cell(row.get(column, ""))) for column in header))
            self.console.print(table)

    def text(self, text: str) -> None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")

    def show(self, shown: Shown) -> None:
        """The command's result on stdout, its notes on stderr. A stdout that takes no more
        (a full disk) is one line naming it; a closed pipe (`| head`) ends the output quietly."""
        try:
            self._show(shown)
            sys.stdout.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            # what is still buffered goes nowhere, not into a second error at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise ConfigError(f"stdout: the output could not be written ({exc.strerror})") from None

    def _show(self, shown: Shown) -> None:
        for line in shown.preface:
            note(as_cli(line))
        if self.format is Format.json and (shown.data is not None or shown.tables):
            self.json(shown.data if shown.data is not None else shown.tables[0].rows)
        elif self.format is Format.csv and shown.csv is not None:
            sys.stdout.write(shown.csv)
        elif shown.text is not None and (self.format is Format.table or not shown.tables):
            self.text(shown.text)
        else:
            for table in shown.tables:
                self.table(table)
        if shown.footer is not None and self.format is not Format.json:
            self.text(shown.footer)
        for line in shown.notes:
            note(as_cli(line))


def csv_text(rows: list[dict[str, Any]], header: list[str] | None = None) -> str:
    """Rows as CSV with a header (default: their keys; an empty table still has its header).
    Every CSV dse prints ends its lines with LF, as pandas' does."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=header or columns(rows), restval="", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A GitHub markdown table with the rows' keys as its header."""
    if not rows:
        return "(no rows)"
    header = columns(rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(row.get(key, "")) for key in header) + " |" for row in rows]
    return "\n".join(lines)


def write_table_files(folder: str | Path, stem: str, rows: list[dict[str, Any]]) -> list[Path]:
    """FOLDER/STEM.md (markdown table) and FOLDER/STEM.json (the rows); returns both paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / f"{stem}.md", out / f"{stem}.json"
    return [
        publish(md, markdown_table(rows) + "\n"),
        publish(js, json.dumps(rows, indent=2, default=str) + "\n"),
    ]


def print_table_and_json(rows: list[dict[str, Any]], folder: str | None, stem: str) -> None:
    """The bench scripts' output: a markdown table, then the rows as JSON on the last line;
    with a folder, also FOLDER/STEM.md and .json."""
    print(markdown_table(rows))
    if folder:
        write_table_files(folder, stem, rows)
    print(json.dumps(rows))


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every key of the rows, in the order first seen: rows of one table may differ in keys
    (the front of an extended study mixes trials of two spaces' parameters)."""
    return list(dict.fromkeys(key for row in rows for key in row))


def fitting_columns(rows: list[dict[str, Any]], wanted: list[str], width: int) -> list[str]:
    """The columns of `wanted`, most important first, whose table fits `width` characters
    (each column: its widest cell, one space each side and a rule; the first two always)."""
    used, keep = 1, []
    for column in wanted:
        cells = [len(_cell(_short(row.get(column)))) for row in rows]
        need = max([len(column), *cells]) + 3
        if used + need <= width or len(keep) < 2:
            keep.append(column)
            used += need
    return keep


def _short(value: Any, limit: int = 40) -> Any:
    """A long text cut for a fitted table (an error message): CSV and JSON have it whole."""
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 1] + "…"
    return value


def _numeric(rows: list[dict[str, Any]], column: str) -> bool:
    values = [r.get(column) for r in rows]
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, int | float) for v in present)


def _float_cell(value: float) -> str:
    """4 significant digits, or as given when it has at most 3 decimals (a number already
    rounded, such as the paper's 99.366: not shown as 99.37)."""
    if abs(value) >= 1e5:
        return f"{value:,.0f}"
    return f"{value:.6g}" if round(value, 3) == value else f"{value:.4g}"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return _float_cell(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
