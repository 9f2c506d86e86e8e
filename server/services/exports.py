"""CSV and XLSX renderings of a dashboard view.

CSV is UTF-8 with a BOM (so Excel opens Kazakh and Russian text right) and streams row by
row; any cell a spreadsheet would read as a formula (starting with = + - @ TAB CR) gets a
leading apostrophe, so a citizen-typed or crafted value cannot run in the analyst's Excel.
XLSX holds the same rows (escaped the same way) in a write-only workbook.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"


def escape_cell(value):
    """The value as a spreadsheet should store it: text that looks like a formula is prefixed with '."""
    if isinstance(value, str) and value.startswith(FORMULA_LEADS):
        return "'" + value
    return value


def csv_stream(header: list[str], rows: Iterable[list]) -> Iterator[str]:
    """The view as CSV text chunks: the BOM and header first, then one chunk per ~500 rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([escape_cell(h) for h in header])
    yield BOM + buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    for i, row in enumerate(rows, 1):
        writer.writerow(["" if v is None else escape_cell(v) for v in row])
        if i % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def xlsx_bytes(title: str, header: list[str], rows: Iterable[list]) -> bytes:
    """The view as an XLSX workbook (one sheet, write-only mode: memory stays flat per row)."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=title[:31] or "view")
    sheet.append([escape_cell(h) for h in header])
    for row in rows:
        sheet.append([escape_cell(v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
