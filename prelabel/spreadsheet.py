"""CSV files for a spreadsheet: what classification's predictions.csv and review.csv share.

RFC 4180 text (CRLF line ends, a field quoted when it holds a comma, a quote or a line
break, quotes doubled), written in UTF-8 with a byte order mark: without it Excel
(double-clicking the file, or File > Open) reads a CSV in the system's legacy code page and
turns every accent and emoji into mojibake; LibreOffice, Google Sheets, pandas and Python's
csv module with `encoding="utf-8-sig"` read the BOM as what it is.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from prelabel.files import write_atomic

#: The byte order mark a CSV starts with (module docstring).
BOM = "\ufeff"
#: What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """`value`, with an apostrophe in front when a spreadsheet would run it as a formula
    (`=HYPERLINK(...)` in a scraped comment): spreadsheets show the apostrophe's cell as
    text and hide the apostrophe."""
    return "'" + value if value.startswith(FORMULA_START) else value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """The CSV's text, without the byte order mark; cells are written as given (pass text
    from the data through `safe_cell`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Write a CSV atomically, in UTF-8 with a byte order mark."""
    write_atomic(path, BOM + csv_text(header, rows))


__all__ = ["BOM", "FORMULA_START", "csv_text", "safe_cell", "write_csv"]
