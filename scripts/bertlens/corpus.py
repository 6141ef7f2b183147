"""Corpus stage: download, read, map SNOW's columns, normalise, drop empty and duplicate rows."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from .io import atomic_path, read_table, write_json, write_table
from .readers import check_not_utf16, map_header, read_delimited, read_xlsx, rows_to_frame
from .stage import UserError

log = logging.getLogger(__name__)

# SNOW T15/T23 headers -> our column names
SNOW_COLUMNS = {
    "ID": "id",
    "#日本語(原文)": "ja",
    "#やさしい日本語": "easy_ja",
    "#英語(原文)": "en",
    "#固有名詞": "proper_noun",
}
TEXT_COLUMNS = ["ja", "easy_ja", "en", "proper_noun"]
#: header cells we understand (matched after NFKC, without spaces, in any case)
HEADERS = {**SNOW_COLUMNS, **{c: c for c in ("id", *TEXT_COLUMNS)}}
FORMATS = ("xlsx", "csv", "tsv", "txt")
_XLSX_MAGIC = b"PK\x03\x04"
_CHUNK = 1 << 16


# --------------------------------------------------------------------------- download
def source_format(source: dict[str, Any]) -> str:
    if source.get("format"):
        return source["format"]
    name = source.get("url") or source.get("path") or ""
    suffix = Path(name.split("?", 1)[0]).suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    raise UserError(
        f"corpus source '{source['name']}': cannot tell the format of '{name}'; add "
        f"format: one of {', '.join(FORMATS)}"
    )


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    fmt: str | None = None,
    timeout: float = 60,
    retries: int = 3,
    backoff: float = 1.0,
    deadline: float = 1800,
) -> dict[str, Any]:
    """Stream ``url`` to ``dest`` with progress logging, a timeout, a deadline, retries and
    verification.

    The file is written under a temporary name and renamed only after its size (the body must
    have exactly Content-Length bytes: fewer or more is refused), its checksum (when ``sha256`` is
    given) and its type (not empty; an xlsx must be a zip archive; nothing may be an HTML page)
    are verified. A gzip or deflate Content-Encoding is decoded. Non-ASCII characters in the URL
    are percent-encoded (the host name by IDNA). Messages name ``url``. Returns facts for the
    provenance record.
    """
    dest = Path(dest)
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            return _download_once(url, dest, sha256, fmt, timeout, deadline)
        except _Permanent as err:
            raise UserError(str(err)) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, _Transient) as err:
            last = err
            log.warning(
                "download %s failed (attempt %d/%d): %s", url, attempt + 1, retries + 1, err
            )
            if attempt < retries:
                time.sleep(backoff * 2**attempt)
    raise UserError(
        f"could not download {url} after {retries + 1} attempt{'s' if retries else ''} "
        f"({_reason(last)}); check the URL "
        "and your network, or download the file yourself and use 'path:' instead of 'url:'"
    )


class _Transient(Exception):
    pass


class _Permanent(Exception):
    pass


def _reason(err: Exception | None) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, http.client.IncompleteRead):
        return "truncated download: the connection closed in the middle of a chunked transfer"
    if isinstance(err, http.client.HTTPException):
        return f"{type(err).__name__}: {err}"
    if isinstance(err, urllib.error.URLError):
        reason = err.reason
        if isinstance(reason, socket.gaierror):
            return f"host name not found: {reason}"
        return str(reason)
    return str(err)


def encode_url(url: str) -> str:
    """``url`` with non-ASCII characters percent-encoded (UTF-8) and an IDNA host name; what is
    already ASCII (and already percent-encoded) is left as it is."""
    if url.isascii():
        return url
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if parts.hostname and not parts.hostname.isascii():
        netloc = netloc.replace(parts.hostname, parts.hostname.encode("idna").decode("ascii"))
    keep = "/%:@!$&'()*+,;=-._~?"
    return urllib.parse.urlunsplit(
        (
            parts.scheme,
            netloc,
            urllib.parse.quote(parts.path, safe=keep),
            urllib.parse.quote(parts.query, safe=keep),
            urllib.parse.quote(parts.fragment, safe=keep),
        )
    )


def _open(url: str, timeout: float):
    req = urllib.request.Request(encode_url(url), headers={"User-Agent": "bertlens/0.1"})
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()  # the error response holds the connection open
        if 400 <= err.code < 500 and err.code not in (408, 429):
            raise _Permanent(
                f"download of {url} failed: HTTP {err.code} {err.reason}; check the URL in "
                "corpus.sources"
            ) from None
        raise


def _decoder(resp, url: str):
    """A zlib decompressor for a gzip/deflate Content-Encoding; None for none (identity)."""
    import zlib

    encoding = (resp.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding in ("identity", ""):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(wbits=31)
    if encoding == "deflate":
        return zlib.decompressobj(wbits=47)  # zlib or gzip header, detected
    raise _Permanent(
        f"{url} was sent with Content-Encoding '{encoding}', which bertlens cannot decode; "
        "download the file yourself and use 'path:' instead of 'url:'"
    )


def _download_once(url, dest: Path, sha256, fmt, timeout, deadline) -> dict[str, Any]:
    resp = _open(url, timeout)
    with resp, atomic_path(dest) as tmp:
        announced = resp.headers.get("Content-Length")
        expected = int(announced) if announced and announced.strip().isdigit() else None
        decoder = _decoder(resp, url)
        started = time.monotonic()
        with open(tmp, "wb") as fh:
            received, size, digest = _stream(resp, fh, decoder, url, expected, started, deadline)
        if expected is not None and received < expected:
            raise _Transient(f"truncated download: got {received} of {expected} bytes")
        if size == 0:
            raise _Permanent(
                f"{url} returned an empty file (0 bytes); check the URL, or download the file "
                "yourself and use 'path:' instead of 'url:'"
            )
        got = digest.hexdigest()
        if sha256 and got.lower() != sha256.lower():
            raise _Permanent(
                f"checksum mismatch for {url}: expected sha256 {sha256.lower()}, got {got}; the "
                "file changed on the server or the sha256 in the config is wrong"
            )
        _check_type(tmp, fmt or "", url, resp.headers.get("Content-Type", ""))
        log.info(
            "downloaded %s: %d bytes in %.1f s, sha256 %s",
            url,
            size,
            time.monotonic() - started,
            got,
        )
    return {"url": url, "bytes": size, "sha256": got}


def _stream(resp, fh, decoder, url, expected, started, deadline):
    """Copy the body to ``fh`` (decoded); return (bytes received, bytes written, sha256).

    The body is read to its end, not just to Content-Length, so that a body longer than announced
    is caught; a server that keeps the connection open after exactly Content-Length bytes ends it
    with a short read timeout."""
    import zlib

    resp.length = None  # read what the server sends, not what it announced
    digest = hashlib.sha256()
    received = size = 0
    next_log = started + _PROGRESS_EVERY
    while True:
        now = time.monotonic()
        if now - started > deadline:
            raise _Permanent(
                f"download of {url} did not finish within corpus.download.deadline ({deadline:g} "
                f"s): got {_amount(received, expected)}; raise the deadline, or download the file "
                "yourself and use 'path:' instead of 'url:'"
            )
        if now >= next_log:
            log.info(
                "downloading %s: %s after %.0f s", url, _amount(received, expected), now - started
            )
            next_log = now + _PROGRESS_EVERY
        try:
            chunk = resp.read1(_CHUNK)  # what has arrived: the deadline is checked often
        except TimeoutError:
            if expected is not None and received == expected:
                break  # a kept-alive connection after a complete body
            raise
        if not chunk:
            break
        received += len(chunk)
        if expected is not None and received > expected:
            raise _Transient(
                f"the body is longer than its Content-Length of {expected} bytes (got at least "
                f"{received}): the server sent an inconsistent response"
            )
        if expected is not None and received == expected:
            _short_timeout(resp)
        try:
            data = decoder.decompress(chunk) if decoder else chunk
        except zlib.error as err:
            raise _Transient(f"the compressed (gzip) body is corrupt: {err}") from None
        fh.write(data)
        digest.update(data)
        size += len(data)
    if decoder is not None:
        data = decoder.flush()
        if not decoder.eof:
            raise _Transient("truncated download: the compressed (gzip) body ended early")
        fh.write(data)
        digest.update(data)
        size += len(data)
    return received, size, digest


_PROGRESS_EVERY = 10.0  # seconds between progress lines in the log


def _amount(received: int, expected: int | None) -> str:
    if expected:
        return f"{received} of {expected} bytes ({100 * received / expected:.0f}%)"
    return f"{received} bytes"


def _short_timeout(resp) -> None:
    """After the announced length, wait at most 2 s for the end of the connection."""
    sock = getattr(getattr(resp.fp, "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(min(sock.gettimeout() or 2.0, 2.0))


_HTML = re.compile(rb"<(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>]|title>)", re.I)


def looks_html(head: bytes) -> bool:
    """Whether the first 4 KiB hold an HTML document's tags, wherever they start (after a BOM,
    blank lines, an XML declaration or a comment)."""
    return _HTML.search(head[:4096]) is not None


def _check_type(path: Path, fmt: str, what: str, content_type: str = "") -> None:
    with open(path, "rb") as fh:
        head = fh.read(4096)
    is_html = looks_html(head) or ("html" in content_type.lower() and b"<" in head)
    if fmt == "xlsx" and not head.startswith(_XLSX_MAGIC):
        kind = "an HTML page" if is_html else "not an xlsx file"
        raise _Permanent(
            f"{what} returned {kind} instead of an xlsx workbook; the link may point to a "
            "download page: use the direct file URL"
        )
    if fmt in ("csv", "tsv", "txt") and is_html:
        raise _Permanent(
            f"{what} returned an HTML page instead of a {fmt} file; use the direct file URL"
        )


# --------------------------------------------------------------------------- reading
def read_source(
    path: str | os.PathLike, fmt: str, name: str, sheet: Any = 0, text_column: str | None = None
) -> pd.DataFrame:
    """Read one source file into our columns (id, ja, easy_ja, en, proper_noun as present), every
    cell as text (see :mod:`bertlens.readers`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"corpus source '{name}': file '{path}' does not exist; fix its path:")
    if path.stat().st_size == 0:
        raise UserError(f"corpus source '{name}': file '{path}' is empty; give a file with rows")
    df, near = _read_frame(path, fmt, name, sheet, text_column)
    header = [str(c) for c in df.attrs.get("header", df.columns)]
    present = [c for c in TEXT_COLUMNS if c in df.columns]
    if not present:
        raise UserError(
            f"corpus source '{name}': '{path}' has none of the expected columns "
            f"({', '.join(k for k in SNOW_COLUMNS if k != 'ID')} or {', '.join(TEXT_COLUMNS)}); "
            f"found: {', '.join(c for c in header if c) or 'no columns'}"
            + (f"; near misses: {', '.join(near)}" if near else "")
            + "; give the file a header row with these names"
            + (
                f" or pick the sheet that has one with sheet: (now {sheet!r})"
                if fmt == "xlsx"
                else ""
            )
        )
    if near:
        log.warning("corpus source '%s': headers not used: %s", name, ", ".join(near))
    if df.empty:
        raise UserError(
            f"corpus source '{name}': '{path}' has a header but no rows; add rows"
            + (f", pick another sheet with sheet: (now {sheet!r})" if fmt == "xlsx" else "")
            + " or remove the source from corpus.sources"
        )
    if "id" not in df.columns:
        df["id"] = [f"{name}-{i + 1}" for i in range(len(df))]
    df = df[["id", *present]].copy()
    df.insert(1, "source", name)
    df.attrs["near_misses"] = near
    return df


def _read_frame(
    path: Path, fmt: str, name: str, sheet: Any, text_column: str | None
) -> tuple[pd.DataFrame, list[str]]:
    """The file as a table of text under our column names, and the header near misses."""
    try:
        if fmt == "xlsx":
            try:
                _check_type(path, "xlsx", f"corpus source '{name}' ({path})")
            except _Permanent as err:
                raise UserError(str(err)) from None
            rows = read_xlsx(path, sheet, name)
        else:
            check_not_utf16(path, name)
            if fmt == "txt":
                lines = path.read_text(encoding="utf-8-sig").splitlines()
                return pd.DataFrame({text_column or "easy_ja": lines}, dtype=object), []
            rows = read_delimited(path, "," if fmt == "csv" else "\t", name)
    except UnicodeDecodeError as err:
        raise UserError(
            f"corpus source '{name}': '{path}' is not UTF-8 text (byte {err.start}); convert it, "
            f"e.g. 'iconv -f SHIFT_JIS -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}'"
        ) from None
    except (ValueError, KeyError, zipfile.BadZipFile) as err:
        raise UserError(
            f"corpus source '{name}': cannot read '{path}' as {fmt}: {err}; export the file again, "
            f"or set format: in corpus.sources if it is not a {fmt} file"
        ) from None
    df = rows_to_frame(rows, name, path)
    names, near = map_header(list(df.columns), HEADERS)
    ours = [n for n in names if n in ("id", *TEXT_COLUMNS)]
    twice = sorted({n for n in ours if ours.count(n) > 1})
    if twice:
        raise UserError(
            f"corpus source '{name}': '{path}' has more than one column for "
            f"{', '.join(twice)} (header: {', '.join(map(str, df.columns))}); keep one of each"
        )
    header = list(df.columns)
    df.columns = names
    df.attrs["header"] = header
    return df, near


def normalize_text(text: Any, form: str = "NFKC") -> str:
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return ""
    text = str(text)
    if form == "NFKC":
        import jaconv

        text = jaconv.normalize(text, "NFKC")
    elif form == "NFC":
        import unicodedata

        text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


def clean(
    frames: list[pd.DataFrame],
    required: list[str],
    dedupe_on: list[str],
    normalize: str = "NFKC",
    max_rows: int | None = None,
    uses: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Concatenate sources, normalise every text, drop rows without text in any ``required``
    column and duplicates (on ``dedupe_on``); count both per source.

    Rows are kept per use: a row with text in one required column serves the models (and MeCab
    statistics, training runs) of that column, each of which reads only the rows where its column
    has text. ``uses`` names them (``{"model 'x'": "en"}``): the stats count the rows of each, and
    a use without rows is an error, as is a source that adds no rows.
    """
    uses = uses or {f"column '{c}'": c for c in required}
    _check_columns(frames, required)
    df = pd.concat(frames, ignore_index=True)
    text_cols = [c for c in TEXT_COLUMNS if c in df.columns]
    for col in text_cols:
        df[col] = [normalize_text(v, normalize) for v in df[col]]
    df["id"] = df["id"].astype(str)
    stats: dict[str, Any] = {"rows_in": {}, "dropped_empty": {}, "dropped_duplicate": {}}
    for name, group in df.groupby("source", sort=False):
        stats["rows_in"][name] = int(len(group))
    unused = (df[required] == "").all(axis=1) if required else pd.Series(False, index=df.index)
    stats["dropped_empty"] = {k: int(v) for k, v in df[unused].groupby("source").size().items()}
    df = df[~unused]
    keys = [c for c in dedupe_on if c in df.columns]
    if keys:
        dup = df.duplicated(subset=keys, keep="first")
        stats["dropped_duplicate"] = {
            k: int(v) for k, v in df[dup].groupby("source").size().items()
        }
        df = df[~dup]
    _check_every_source_adds_rows(df, stats, required)
    if max_rows:
        cut = df.iloc[max_rows:]
        stats["dropped_max_rows"] = {k: int(v) for k, v in cut.groupby("source").size().items()}
        df = df.head(max_rows)
    df = df.reset_index(drop=True)
    stats["rows_out"] = int(len(df))
    stats["rows_per_use"] = {use: int((df[col] != "").sum()) for use, col in uses.items()}
    for use, n in stats["rows_per_use"].items():
        if n == 0:
            raise UserError(
                f"{use} reads column '{uses[use]}', which has no text in any corpus row (after "
                "max_rows); give a source with text in that column or fix the column:"
            )
    stats["columns"] = {}
    for col in text_cols:
        lengths = df.loc[df[col] != "", col].str.len()
        if len(lengths):
            stats["columns"][col] = {
                "non_empty": int(len(lengths)),
                "chars_mean": round(float(lengths.mean()), 2),
                "chars_median": float(lengths.median()),
                "chars_max": int(lengths.max()),
            }
    return df, stats


def _check_columns(frames: list[pd.DataFrame], required: list[str]) -> None:
    near = [m for f in frames for m in f.attrs.get("near_misses", [])]
    have = {c for f in frames for c in f.columns}
    for col in required:
        if col not in have:
            raise UserError(
                f"column '{col}' is needed (by a model or the MeCab stats) but no corpus source has "
                f"it; the corpus has: {', '.join(c for c in TEXT_COLUMNS if c in have)}"
                + (f" (headers not understood: {', '.join(near)})" if near else "")
                + ". Fix the model's column: or add a source with that column"
            )


def _check_every_source_adds_rows(df: pd.DataFrame, stats: dict, required: list[str]) -> None:
    kept = df.groupby("source").size()
    for name, n_in in stats["rows_in"].items():
        if kept.get(name, 0) == 0:
            raise UserError(
                f"corpus source '{name}' adds no rows: of its {n_in} rows, "
                f"{stats['dropped_empty'].get(name, 0)} have no text in {'/'.join(required)} (the "
                "columns the models, MeCab statistics and training runs read) and "
                f"{stats['dropped_duplicate'].get(name, 0)} repeat earlier rows; give it text in "
                "one of those columns (a .txt source fills its text_column, by default easy_ja) "
                "or remove it from corpus.sources"
            )


def _read_or_forget(src: dict[str, Any], path: str) -> pd.DataFrame:
    """Read one source; a downloaded copy that cannot be read is deleted (the next run downloads
    it again instead of keeping it as valid) and the message names its URL."""
    try:
        return read_source(
            path, source_format(src), src["name"], src.get("sheet", 0), src.get("text_column")
        )
    except UserError as err:
        if not src.get("url"):
            raise
        Path(path).unlink(missing_ok=True)
        Path(f"{path}.meta.json").unlink(missing_ok=True)
        raise UserError(
            f"{str(err).replace(str(path), src['url'])} (the downloaded copy was deleted: the next "
            "run downloads it again)"
        ) from None


def build_corpus(
    sources: list[dict[str, Any]],
    files: dict[str, str],
    required: list[str],
    dedupe_on: list[str],
    normalize: str,
    max_rows: int | None,
    out_table: str,
    out_stats: str,
    uses: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Read every source (``files`` maps source name to a local file: the path given in the
    config or the downloaded copy), clean them together and write the table and its stats."""
    frames = [_read_or_forget(src, files[src["name"]]) for src in sources]
    df, stats = clean(frames, required, dedupe_on, normalize, max_rows, uses)
    stats["sources"] = [
        {k: v for k, v in src.items() if k in ("name", "url", "path", "sha256", "format")}
        for src in sources
    ]
    stats["normalize"] = normalize
    write_table(out_table, df)
    write_json(out_stats, stats)
    log.info(
        "corpus: %d rows (in: %s; empty dropped: %s; duplicates dropped: %s)",
        stats["rows_out"],
        stats["rows_in"],
        stats["dropped_empty"],
        stats["dropped_duplicate"],
    )
    return stats


def stats_table(stats: dict[str, Any]) -> pd.DataFrame:
    """One row per source plus the total, for the report."""
    cut = stats.get("dropped_max_rows") or {}
    counts = ["rows read", "empty dropped", "duplicates dropped"] + (
        ["cut by max_rows"] if cut else []
    )
    rows = []
    for name, n_in in stats["rows_in"].items():
        row = {
            "source": name,
            "rows read": n_in,
            "empty dropped": stats["dropped_empty"].get(name, 0),
            "duplicates dropped": stats["dropped_duplicate"].get(name, 0),
        }
        if cut:
            row["cut by max_rows"] = cut.get(name, 0)
        rows.append(row)
    total = {k: sum(r[k] for r in rows) for k in counts}
    rows.append({"source": "total", **total})
    df = pd.DataFrame(rows)
    df["rows kept"] = df["rows read"] - df[counts[1:]].sum(axis=1)
    return df


def read_corpus(path: str | os.PathLike, column: str, who: str = "a stage") -> pd.DataFrame:
    """The corpus rows with text in ``column`` (each model, MeCab column and training run reads
    just these), in corpus order, with a fresh index and ``column`` as strings: the one way a
    stage reads the corpus table; ``who`` names the reader in the error for a missing column."""
    corpus = read_table(path)
    if column not in corpus.columns:
        raise UserError(
            f"{who} reads column '{column}', but corpus table '{path}' has no column '{column}' "
            f"(it has {', '.join(map(str, corpus.columns))}); fix `column:` in the config"
        )
    text = corpus[column].fillna("").astype(str)
    rows = corpus[text != ""].reset_index(drop=True)
    rows[column] = rows[column].astype(str)
    return rows
