"""Corpus files read as their formats define them, every cell as text.

* TSV/CSV through the csv module's standard quoting (quoted fields, doubled quotes, line breaks
  inside quotes: what Excel, pandas and Python's csv module write). A TSV that is not quoted that
  way (a cell starting with a quote that does not close it) is read with quotes as plain text.
* xlsx through openpyxl: merged cells read as the spreadsheet shows them (the top-left value in
  every cell of the range), formulas by their saved value (refused when none was saved), a missing
  sheet named with the sheets present.
* ``NA``, ``None``, ``null``, ``N/A`` are text everywhere (nothing is turned into a missing value).
* UTF-16 files (Excel's "Unicode Text") are named as such.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import logging
import re
import unicodedata
from pathlib import Path
from typing import Any

import pandas as pd

from .stage import UserError

log = logging.getLogger(__name__)
#: a merged range or a formula in a worksheet's XML (with or without a namespace prefix)
_MERGED_OR_FORMULA = re.compile(rb"<(?:\w+:)?(?:mergeCell|f)[\s>/]")


# --------------------------------------------------------------------------- encodings
def check_not_utf16(path: Path, name: str) -> None:
    """UTF-16 (with a byte-order mark, or ASCII text with a NUL byte in every other place)."""
    head = path.read_bytes()[:4096]
    bom = head[:2] in (b"\xff\xfe", b"\xfe\xff")
    nul_every_other = len(head) >= 4 and (
        head[1::2].count(0) > len(head) // 4 or head[0::2].count(0) > len(head) // 4
    )
    if bom or nul_every_other:
        raise UserError(
            f"corpus source '{name}': '{path}' is UTF-16 text (Excel's 'Unicode Text'), not "
            f"UTF-8; save it as UTF-8 ('CSV UTF-8' in Excel) or convert it, e.g. "
            f"'iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}'"
        )


# --------------------------------------------------------------------------- TSV / CSV
def read_delimited(path: Path, delimiter: str, name: str) -> list[list[str]]:
    """Rows of a TSV/CSV file with standard quoting (a TSV without it: quotes are text)."""
    try:
        return _csv_rows(path, delimiter, strict=True)
    except csv.Error as err:
        if delimiter == ",":
            raise UserError(
                f"corpus source '{name}': '{path}' line {err.args[1]}: a quoted cell is not closed "
                f"properly ({err.args[0]}); quote the whole cell and double the quotes inside it "
                '(""like this""), as spreadsheet programs do'
            ) from None
        log.info(
            "corpus source '%s': '%s' is not quoted the csv way (line %d: %s); quotes are read "
            "as text",
            name,
            path,
            err.args[1],
            err.args[0],
        )
        return _csv_rows(path, delimiter, strict=False)


def _csv_rows(path: Path, delimiter: str, strict: bool) -> list[list[str]]:
    options: dict[str, Any] = {"delimiter": delimiter}
    if strict:
        options["strict"] = True
    else:
        options["quoting"] = csv.QUOTE_NONE
    rows = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, **options)
        try:
            for row in reader:
                if row:  # a blank line
                    rows.append(row)
        except csv.Error as err:
            raise csv.Error(str(err), reader.line_num) from None
    return rows


# --------------------------------------------------------------------------- xlsx
def read_xlsx(path: Path, sheet: Any, name: str) -> list[list[str]]:
    """Rows of one sheet as the spreadsheet shows them (merged ranges filled, formulas by value)."""
    import openpyxl

    if not _has_merged_cells_or_formulas(path):  # read-only mode is twice as fast
        ws = _pick_sheet(
            openpyxl.load_workbook(path, read_only=True, data_only=True), sheet, name, path
        )
        rows = [[cell_text(v) for v in row] for row in ws.iter_rows(values_only=True)]
        return [row for row in rows if any(row)]
    # merged ranges are only known in the full mode
    wb = openpyxl.load_workbook(path, data_only=False)
    ws = _pick_sheet(wb, sheet, name, path)
    values = [[cell.value for cell in row] for row in ws.iter_rows()]
    formulas = {(c.row, c.column): c for row in ws.iter_rows() for c in row if c.data_type == "f"}
    if formulas:
        cached = openpyxl.load_workbook(path, data_only=True)[ws.title]
        for (r, c), cell in formulas.items():
            value = cached.cell(r, c).value
            if value is None:
                raise UserError(
                    f"corpus source '{name}': cell {cell.coordinate} of sheet '{ws.title}' in "
                    f"'{path}' is a formula ({cell.value}) without a saved value (the file was "
                    "written by a program that does not compute formulas); open it in Excel or "
                    "LibreOffice and save it again, or paste the values instead of the formulas"
                )
            values[r - 1][c - 1] = value
    for rng in ws.merged_cells.ranges:
        top = values[rng.min_row - 1][rng.min_col - 1]
        for r in range(rng.min_row, rng.max_row + 1):
            for c in range(rng.min_col, rng.max_col + 1):
                values[r - 1][c - 1] = top
    rows = [[cell_text(v) for v in row] for row in values]
    return [row for row in rows if any(row)]


def _has_merged_cells_or_formulas(path: Path) -> bool:
    """Whether any worksheet of the workbook has a merged range or a formula (a scan of its XML)."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        for part in zf.namelist():
            if part.startswith("xl/worksheets/") and part.endswith(".xml"):
                with zf.open(part) as fh:
                    tail = b""
                    while chunk := fh.read(1 << 20):
                        data = tail + chunk
                        if _MERGED_OR_FORMULA.search(data):
                            return True
                        tail = data[-16:]
    return False


def _pick_sheet(wb, sheet: Any, name: str, path: Path):
    names = wb.sheetnames
    if isinstance(sheet, int) and 0 <= sheet < len(names):
        return wb[names[sheet]]
    if isinstance(sheet, str) and sheet in names:
        return wb[sheet]
    raise UserError(
        f"corpus source '{name}': '{path}' has no sheet {sheet!r} (its sheets: "
        f"{', '.join(repr(n) for n in names)}); fix sheet: in corpus.sources (a name, or an "
        "index from 0)"
    )


def cell_text(value: Any) -> str:
    """A cell as the text it shows: whole numbers without '.0', dates in ISO form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime) and value.time() == dt.time():
        return value.date().isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


# --------------------------------------------------------------------------- header
def header_key(text: str) -> str:
    """What a header cell is matched by: NFKC (full-width ＃ and brackets), no spaces, any case."""
    return "".join(unicodedata.normalize("NFKC", str(text)).split()).casefold()


def map_header(header: list[str], known: dict[str, str]) -> tuple[list[str], list[str]]:
    """Our name for each header cell (the cell itself when unknown), and the near misses: cells
    that resemble a known header without matching it (``'#やさしい日本語文' (#やさしい日本語?)``)."""
    keys = {header_key(k): v for k, v in known.items()}
    names, near = [], []
    for cell in header:
        key = header_key(cell)
        if key in keys:
            names.append(keys[key])
            continue
        names.append(str(cell).strip())
        close = difflib.get_close_matches(key, list(keys), n=1, cutoff=0.75) if key else []
        if close:
            wanted = next(k for k in known if header_key(k) == close[0])
            near.append(f"'{cell}' (meant '{wanted}'?)")
    return names, near


def rows_to_frame(rows: list[list[str]], name: str, path: Path) -> pd.DataFrame:
    """The first row is the header; short rows are padded, long ones are an error."""
    if not rows:
        return pd.DataFrame()
    header, body = rows[0], rows[1:]
    width = len(header)
    for i, row in enumerate(body, start=2):
        if len(row) > width and any(row[width:]):
            raise UserError(
                f"corpus source '{name}': '{path}' row {i} has {len(row)} cells but the header "
                f"has {width}; quote cells that contain the separator, or fix the row"
            )
    body = [(row + [""] * width)[:width] for row in body]
    return pd.DataFrame(body, columns=[str(c) for c in header], dtype=object)
