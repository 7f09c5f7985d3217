"""Reading a file at the border: every failure is a :class:`tailgraph.errors.DataError`
naming the file — missing, a directory, a symlink loop, unreadable, not UTF-8, not JSON."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from tailgraph.errors import DataError

__all__ = ["read_text", "read_json_file", "read_csv_rows"]


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """The file's text (UTF-8; a byte-order mark is accepted)."""
    p = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{what} not found", file=p) from None
    except IsADirectoryError:
        raise DataError(f"is a directory, expected a {what}", file=p) from None
    except OSError as exc:  # symlink loops, permissions, I/O errors
        raise DataError(f"cannot read the {what}: {exc.strerror or exc}", file=p) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"not UTF-8 text (byte {exc.start}: {raw[exc.start : exc.start + 1]!r})", file=p
        ) from None


def read_json_file(path: str | os.PathLike) -> Any:
    """A JSON document (see :func:`read_text` for the file errors)."""
    text = read_text(path, "JSON file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON (corrupt or truncated?): {exc}", file=str(path)) from None
    except RecursionError:
        raise DataError("JSON nested too deeply", file=str(path)) from None


def read_csv_rows(path: str | os.PathLike, dict_rows: bool = False) -> tuple[list, list | None]:
    """``(rows, header)``: lists of fields (``header`` ``None``), or dicts by the header row
    when ``dict_rows`` (short rows are padded with ``None``, as ``csv.DictReader``)."""
    text = read_text(path, "CSV file")
    try:
        if dict_rows:
            reader = csv.DictReader(io.StringIO(text, newline=""))
            rows = list(reader)
            return rows, list(reader.fieldnames) if reader.fieldnames is not None else None
        return list(csv.reader(io.StringIO(text, newline=""))), None
    except csv.Error as exc:
        raise DataError(f"not a readable CSV file: {exc}", file=str(path)) from None
