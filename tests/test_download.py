"""Real downloads through ``bertlens.corpus.download`` from a loopback HTTP server (no mocks)."""

from __future__ import annotations

import hashlib
import socket
import time
import unicodedata
from pathlib import Path

import pandas as pd
import pytest

from bertlens.corpus import clean, download, read_source
from bertlens.stage import UserError
from tests.helpers.http import (
    XLSX,
    Bytes,
    Chunked,
    Drop,
    FailThenSucceed,
    Html,
    Slow,
    Status,
    Trickle,
    serve,
)
from tests.helpers.snow import EMPTY_EASY_ROW, FULLWIDTH_ROW, HALFWIDTH_KANA_ROW, write_snow_xlsx

FAST = {"timeout": 1.0, "backoff": 0}
TEXT = ["ja", "easy_ja", "en"]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """Loopback requests must not be sent to a proxy configured in the environment."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def workbooks(tmp_path_factory) -> dict[str, tuple[bytes, pd.DataFrame]]:
    folder = tmp_path_factory.mktemp("snow")
    out = {}
    for kind, rows, seed in (("T15", 40, 1), ("T23", 30, 2)):
        path = folder / f"{kind}.xlsx"
        df = write_snow_xlsx(path, kind=kind, rows=rows, seed=seed)
        out[kind] = (path.read_bytes(), df)
    return out


def _oracle(value) -> str:
    """NFKC + whitespace collapse, independent of bertlens (the word lists avoid the characters
    where jaconv's NFKC differs from unicodedata's)."""
    if value is None or pd.isna(value):
        return ""
    return " ".join(unicodedata.normalize("NFKC", str(value)).split())


def _expected(snow: pd.DataFrame, name: str) -> pd.DataFrame:
    exp = pd.DataFrame(
        {
            "id": snow["ID"].astype(str),
            "source": name,
            "ja": snow["#日本語(原文)"].map(_oracle),
            "easy_ja": snow["#やさしい日本語"].map(_oracle),
            "en": snow["#英語(原文)"].map(_oracle),
        }
    )
    if "#固有名詞" in snow:
        exp["proper_noun"] = snow["#固有名詞"].map(_oracle)
    return exp


def _folder_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- happy paths
@pytest.mark.parametrize("kind", ["T15", "T23"])
def test_snow_download_read_and_clean(tmp_path, workbooks, kind):
    data, snow = workbooks[kind]
    name = kind.lower()
    with serve({f"/{kind}.xlsx": Bytes(data, XLSX)}) as base:
        dest = tmp_path / "downloads" / f"{name}.xlsx"
        facts = download(f"{base}/{kind}.xlsx", dest, fmt="xlsx", retries=2, **FAST)
        assert base.counts[f"/{kind}.xlsx"] == 1
    assert dest.read_bytes() == data
    assert facts == {
        "url": f"{base}/{kind}.xlsx",
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert _folder_files(dest.parent) == [dest.name]  # no temp file left behind

    raw = read_source(dest, "xlsx", name)
    cols = ["id", "source", *TEXT] + (["proper_noun"] if kind == "T23" else [])
    assert list(raw.columns) == cols
    assert len(raw) == len(snow)
    assert raw["id"].tolist() == snow["ID"].astype(str).tolist()

    # easy_ja is the column used: a row without it serves nobody (rows per use)
    df, stats = clean([raw], required=["easy_ja"], dedupe_on=TEXT)
    assert list(df.columns) == cols
    # NFKC: full-width ASCII and half-width katakana are gone, whitespace is collapsed
    joined = "".join(df[TEXT].to_numpy().ravel())
    assert "ＡＢＣ" not in joined and "ABC123" in joined
    assert "ﾃﾞﾊﾟｰﾄ" not in joined and "デパート" in joined and "コーヒー" in joined
    assert "  " not in joined and "\u3000" not in joined
    # the planted rows: one empty easy_ja; an exact duplicate and a duplicate only after NFKC
    assert stats["rows_in"] == {name: len(snow)}
    assert stats["dropped_empty"] == {name: 1}
    assert stats["dropped_duplicate"] == {name: 2}
    assert stats["rows_out"] == len(df) == len(snow) - 3
    ids = set(df["id"])
    assert str(snow["ID"][EMPTY_EASY_ROW]) not in ids
    assert str(snow["ID"].iloc[-1]) not in ids and str(snow["ID"].iloc[-2]) not in ids
    assert {str(snow["ID"][FULLWIDTH_ROW]), str(snow["ID"][HALFWIDTH_KANA_ROW])} <= ids

    exp = _expected(snow, name)
    exp = exp.drop(index=[EMPTY_EASY_ROW, len(snow) - 2, len(snow) - 1]).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        df.astype(object), exp.astype(object), check_dtype=False, check_index_type=False
    )


def test_t15_and_t23_together(tmp_path, workbooks):
    routes = {f"/{k}.xlsx": Bytes(workbooks[k][0], XLSX) for k in ("T15", "T23")}
    with serve(routes) as base:
        frames = []
        for kind in ("T15", "T23"):
            dest = tmp_path / f"{kind.lower()}.xlsx"
            download(f"{base}/{kind}.xlsx?dl=1", dest, fmt="xlsx", **FAST)
            frames.append(read_source(dest, "xlsx", kind.lower()))
    df, stats = clean(frames, required=["easy_ja"], dedupe_on=TEXT)
    assert list(df.columns) == ["id", "source", *TEXT, "proper_noun"]
    # T15 has no proper nouns: its rows get an empty one, not NaN
    assert (df.loc[df["source"] == "t15", "proper_noun"] == "").all()
    assert df.loc[df["source"] == "t23", "proper_noun"].str.len().gt(0).any()
    # the planted special rows are the same in both workbooks: T23's copies are duplicates
    exp = pd.concat([_expected(workbooks[k][1], k.lower()) for k in ("T15", "T23")])
    exp = exp[exp["easy_ja"] != ""]
    exp = exp[~exp.duplicated(subset=TEXT)]
    assert stats["dropped_duplicate"]["t15"] == 2
    assert stats["dropped_duplicate"]["t23"] >= 4
    assert stats["dropped_empty"] == {"t15": 1, "t23": 1}
    assert stats["rows_out"] == len(df) == len(exp)
    assert df["id"].tolist() == exp["id"].tolist()
    t15_out = (df["source"] == "t15").sum()
    assert stats["rows_in"]["t23"] - 1 - stats["dropped_duplicate"]["t23"] == len(df) - t15_out


def test_sha256_verified(tmp_path, workbooks):
    data = workbooks["T15"][0]
    good = hashlib.sha256(data).hexdigest()
    with serve({"/t15.xlsx": Bytes(data, XLSX)}) as base:
        dest = tmp_path / "ok" / "t15.xlsx"
        facts = download(f"{base}/t15.xlsx", dest, sha256=good.upper(), fmt="xlsx", **FAST)
        assert facts["sha256"] == good and dest.read_bytes() == data

        bad_dest = tmp_path / "bad" / "t15.xlsx"
        wrong = "0" * 64
        with pytest.raises(UserError, match="checksum mismatch") as err:
            download(f"{base}/t15.xlsx", bad_dest, sha256=wrong, fmt="xlsx", retries=3, **FAST)
        assert good in str(err.value) and wrong in str(err.value)
        assert base.counts["/t15.xlsx"] == 2  # a wrong checksum is not retried
    assert not bad_dest.exists()
    assert _folder_files(bad_dest.parent) == []


def test_existing_file_survives_a_failed_download(tmp_path):
    dest = tmp_path / "t15.xlsx"
    dest.write_bytes(b"previous copy")
    with serve({"/t15.xlsx": Html()}) as base, pytest.raises(UserError):
        download(f"{base}/t15.xlsx", dest, fmt="xlsx", **FAST)
    assert dest.read_bytes() == b"previous copy"
    assert _folder_files(tmp_path) == ["t15.xlsx"]


# --------------------------------------------------------------------------- HTTP errors
def test_404_is_not_retried(tmp_path):
    dest = tmp_path / "x.xlsx"
    with serve({}) as base:
        url = f"{base}/missing.xlsx"
        with pytest.raises(UserError, match="HTTP 404") as err:
            download(url, dest, fmt="xlsx", retries=3, **FAST)
        assert base.counts["/missing.xlsx"] == 1
    assert url in str(err.value)
    assert _folder_files(tmp_path) == []


def test_500_is_retried_then_fails(tmp_path):
    dest = tmp_path / "x.xlsx"
    with serve({"/boom.xlsx": 500}) as base:
        url = f"{base}/boom.xlsx"
        with pytest.raises(UserError, match="after 3 attempts") as err:
            download(url, dest, fmt="xlsx", retries=2, **FAST)
        assert base.counts["/boom.xlsx"] == 3
    assert "HTTP 500" in str(err.value) and url in str(err.value)
    assert _folder_files(tmp_path) == []


def test_429_is_retried(tmp_path):
    with serve({"/busy.csv": 429}) as base, pytest.raises(UserError, match="HTTP 429"):
        download(f"{base}/busy.csv", tmp_path / "x.csv", fmt="csv", retries=1, **FAST)
    assert base.counts["/busy.csv"] == 2


def test_transient_failure_then_success(tmp_path, workbooks):
    data = workbooks["T15"][0]
    dest = tmp_path / "t15.xlsx"
    with serve({"/t15.xlsx": FailThenSucceed(1, Bytes(data, XLSX), status=503)}) as base:
        facts = download(f"{base}/t15.xlsx", dest, fmt="xlsx", retries=2, **FAST)
        assert base.counts["/t15.xlsx"] == 2
    assert dest.read_bytes() == data and facts["bytes"] == len(data)
    assert _folder_files(tmp_path) == ["t15.xlsx"]


def test_failures_beyond_retries_fail(tmp_path, workbooks):
    flaky = FailThenSucceed(2, Bytes(workbooks["T15"][0], XLSX), status=500)
    with serve({"/t15.xlsx": flaky}) as base, pytest.raises(UserError, match="2 attempts"):
        download(f"{base}/t15.xlsx", tmp_path / "t15.xlsx", fmt="xlsx", retries=1, **FAST)
    assert base.counts["/t15.xlsx"] == 2
    assert _folder_files(tmp_path) == []


# --------------------------------------------------------------------------- wrong content
@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_html_page_instead_of_xlsx(tmp_path, content_type):
    page = b"<!DOCTYPE html>\n<html><body>Please log in to download</body></html>"
    with serve({"/T15.xlsx": Bytes(page, content_type)}) as base:
        with pytest.raises(UserError, match="HTML page") as err:
            download(f"{base}/T15.xlsx", tmp_path / "t15.xlsx", fmt="xlsx", retries=2, **FAST)
        assert base.counts["/T15.xlsx"] == 1  # retrying will not turn a page into a workbook
    assert "direct file URL" in str(err.value)
    assert _folder_files(tmp_path) == []


def test_html_page_instead_of_tsv(tmp_path):
    with serve({"/corpus.tsv": Html()}) as base, pytest.raises(UserError, match="HTML page"):
        download(f"{base}/corpus.tsv", tmp_path / "c.tsv", fmt="tsv", **FAST)
    assert _folder_files(tmp_path) == []


def test_non_zip_bytes_are_not_an_xlsx(tmp_path):
    page = Bytes(b"ID,ja\n1,x\n", "text/csv")
    with serve({"/t.xlsx": page}) as base, pytest.raises(UserError, match="not an xlsx file"):
        download(f"{base}/t.xlsx", tmp_path / "t.xlsx", fmt="xlsx", **FAST)
    assert _folder_files(tmp_path) == []


def test_truncated_download_leaves_no_file(tmp_path, workbooks):
    data = workbooks["T15"][0]
    short = Bytes(data[: len(data) // 2], XLSX, content_length=len(data))
    with serve({"/t15.xlsx": short}) as base:
        with pytest.raises(UserError, match="truncated") as err:
            download(f"{base}/t15.xlsx", tmp_path / "t15.xlsx", fmt="xlsx", retries=1, **FAST)
        assert base.counts["/t15.xlsx"] == 2  # truncation is transient: retried
    assert f"{len(data) // 2} of {len(data)} bytes" in str(err.value)
    assert _folder_files(tmp_path) == []


def test_truncated_then_complete(tmp_path, workbooks):
    """A retry after a truncated transfer writes the whole file."""
    data = workbooks["T15"][0]

    class Flaky(FailThenSucceed):
        def next_behaviour(self):
            with self._lock:
                self._seen += 1
                return Bytes(data[:100], XLSX, len(data)) if self._seen == 1 else self.then

    with serve({"/t15.xlsx": Flaky(1, Bytes(data, XLSX))}) as base:
        download(f"{base}/t15.xlsx", tmp_path / "t15.xlsx", fmt="xlsx", retries=1, **FAST)
        assert base.counts["/t15.xlsx"] == 2
    assert (tmp_path / "t15.xlsx").read_bytes() == data
    assert _folder_files(tmp_path) == ["t15.xlsx"]


def test_chunked_download(tmp_path, workbooks):
    data = workbooks["T23"][0]
    with serve({"/t23.xlsx": Chunked(data, XLSX, chunk=1000)}) as base:
        facts = download(f"{base}/t23.xlsx", tmp_path / "t23.xlsx", fmt="xlsx", **FAST)
    assert (tmp_path / "t23.xlsx").read_bytes() == data and facts["bytes"] == len(data)


def test_truncated_chunked_download(tmp_path, workbooks):
    """Without Content-Length, a cut-off chunked transfer is still an error, retried."""
    cut = Chunked(workbooks["T23"][0], XLSX, chunk=1000, truncate=True)
    with serve({"/t23.xlsx": cut}) as base:
        url = f"{base}/t23.xlsx"
        with pytest.raises(UserError, match="after 2 attempts") as err:
            download(url, tmp_path / "t23.xlsx", fmt="xlsx", retries=1, **FAST)
        assert base.counts["/t23.xlsx"] == 2
    assert url in str(err.value) and "truncated" in str(err.value)
    assert _folder_files(tmp_path) == []


def test_connection_dropped_without_response(tmp_path):
    with serve({"/t.csv": Drop()}) as base:
        url = f"{base}/t.csv"
        with pytest.raises(UserError, match="after 2 attempts") as err:
            download(url, tmp_path / "t.csv", fmt="csv", retries=1, **FAST)
        assert base.counts["/t.csv"] == 2
    assert url in str(err.value)
    assert _folder_files(tmp_path) == []


# --------------------------------------------------------------------------- network failures
def test_connection_refused(tmp_path):
    # a socket bound but not listening: connecting to its port is refused, and nobody else can
    # take the port while we hold it
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/t15.xlsx"
        with pytest.raises(UserError) as err:
            download(url, tmp_path / "t15.xlsx", fmt="xlsx", retries=1, **FAST)
    msg = str(err.value)
    assert url in msg and "after 2 attempts" in msg and "refused" in msg.lower()
    assert "path:" in msg  # tells the user how to work around it
    assert _folder_files(tmp_path) == []


def test_dns_failure(tmp_path):
    url = "http://nonexistent.invalid/T15.xlsx"
    with pytest.raises(UserError) as err:
        download(url, tmp_path / "t15.xlsx", fmt="xlsx", retries=0, **FAST)
    msg = str(err.value)
    assert url in msg and "host name not found" in msg
    assert _folder_files(tmp_path) == []


def test_timeout_before_headers(tmp_path):
    with serve({"/slow.xlsx": Slow(delay=10)}) as base:
        url = f"{base}/slow.xlsx"
        started = time.perf_counter()
        with pytest.raises(UserError, match="timed out") as err:
            download(url, tmp_path / "s.xlsx", fmt="xlsx", retries=1, timeout=0.3, backoff=0)
        elapsed = time.perf_counter() - started
        assert base.counts["/slow.xlsx"] == 2
    assert url in str(err.value)
    assert elapsed < 5  # the timeout, not the server's delay, ended each attempt
    assert _folder_files(tmp_path) == []


def test_timeout_in_the_middle_of_the_body(tmp_path, workbooks):
    data = workbooks["T15"][0]
    stall = Slow(delay=10, then=Bytes(data, XLSX), after_headers=True)
    with serve({"/t15.xlsx": stall}) as base:
        started = time.perf_counter()
        with pytest.raises(UserError, match="timed out"):
            download(
                f"{base}/t15.xlsx",
                tmp_path / "t15.xlsx",
                fmt="xlsx",
                retries=0,
                timeout=0.3,
                backoff=0,
            )
        assert time.perf_counter() - started < 5
    assert _folder_files(tmp_path) == []  # the half-received file was removed


def test_backoff_waits_between_attempts(tmp_path):
    with serve({"/x.csv": 500}) as base:
        started = time.perf_counter()
        with pytest.raises(UserError):
            download(
                f"{base}/x.csv", tmp_path / "x.csv", fmt="csv", retries=2, timeout=1, backoff=0.05
            )
        # waits 0.05 then 0.1 seconds (exponential)
        assert time.perf_counter() - started >= 0.15
        assert base.counts["/x.csv"] == 3


def test_status_helper_body_is_not_saved(tmp_path):
    """An error status with a body must not be written as the file."""
    with serve({"/e.txt": Status(500, b"internal error text")}) as base, pytest.raises(UserError):
        download(f"{base}/e.txt", tmp_path / "e.txt", fmt="txt", retries=0, **FAST)
    assert _folder_files(tmp_path) == []


# --------------------------------------------------------------------------- never silently wrong
TSV = "ID\t#やさしい日本語\t#英語(原文)\n1\t猫です。\tA cat.\n".encode()


def test_body_longer_than_content_length(tmp_path, workbooks):
    """The server announces half of what it sends: http.client alone would stop at the announced
    length and keep half a workbook."""
    data = workbooks["T15"][0]
    liar = Bytes(data, XLSX, content_length=len(data) // 2)
    with serve({"/t15.xlsx": liar}) as base:
        url = f"{base}/t15.xlsx"
        with pytest.raises(UserError) as err:
            download(url, tmp_path / "t15.xlsx", fmt="xlsx", retries=1, **FAST)
        assert base.counts["/t15.xlsx"] == 2
    assert str(err.value).startswith(
        f"could not download {url} after 2 attempts (the body is longer than its Content-Length "
        f"of {len(data) // 2} bytes (got at least "
    )
    assert _folder_files(tmp_path) == []


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_content_encoding_is_decoded(tmp_path, encoding):
    import gzip
    import zlib

    body = gzip.compress(TSV) if encoding == "gzip" else zlib.compress(TSV)
    route = Bytes(body, "text/tab-separated-values", headers={"Content-Encoding": encoding})
    with serve({"/c.tsv": route}) as base:
        facts = download(f"{base}/c.tsv", tmp_path / "c.tsv", fmt="tsv", **FAST)
    assert (tmp_path / "c.tsv").read_bytes() == TSV
    assert facts["bytes"] == len(TSV) and facts["sha256"] == hashlib.sha256(TSV).hexdigest()
    assert read_source(tmp_path / "c.tsv", "tsv", "c")["en"].tolist() == ["A cat."]


def test_truncated_gzip_body(tmp_path):
    import gzip

    body = gzip.compress(TSV * 50)[:-20]  # the server's Content-Length matches the cut body
    route = Bytes(body, "text/plain", headers={"Content-Encoding": "gzip"})
    with serve({"/c.tsv": route}) as base, pytest.raises(UserError) as err:
        download(f"{base}/c.tsv", tmp_path / "c.tsv", fmt="tsv", retries=0, **FAST)
    assert "truncated download: the compressed (gzip) body ended early" in str(err.value)
    assert _folder_files(tmp_path) == []


@pytest.mark.parametrize(
    "page",
    [
        b"\xef\xbb\xbf<!DOCTYPE html><html><body>Log in</body></html>",
        b"\n\n  <!-- portal -->\n<html lang='ja'><head><title>Login</title></head></html>",
        b"<?xml version='1.0'?>\n<!DOCTYPE html PUBLIC '-//W3C//DTD XHTML 1.0//EN'>\n<html>",
    ],
    ids=["bom", "comment-first", "xhtml"],
)
def test_html_page_whatever_its_first_bytes(tmp_path, page):
    with serve({"/c.tsv": Bytes(page, "text/plain")}) as base:
        url = f"{base}/c.tsv"
        with pytest.raises(UserError) as err:
            download(url, tmp_path / "c.tsv", fmt="tsv", retries=2, **FAST)
        assert base.counts["/c.tsv"] == 1
    assert str(err.value) == (
        f"{url} returned an HTML page instead of a tsv file; use the direct file URL"
    )
    assert _folder_files(tmp_path) == []


def test_empty_body_is_refused(tmp_path):
    with serve({"/c.tsv": Bytes(b"", "text/plain")}) as base:
        url = f"{base}/c.tsv"
        with pytest.raises(UserError) as err:
            download(url, tmp_path / "c.tsv", fmt="tsv", retries=2, **FAST)
    assert str(err.value) == (
        f"{url} returned an empty file (0 bytes); check the URL, or download the file yourself "
        "and use 'path:' instead of 'url:'"
    )
    assert _folder_files(tmp_path) == []


def test_overall_deadline_with_progress(tmp_path, monkeypatch, caplog):
    """A server that trickles 100 bytes every 0.1 s never trips the read timeout; the deadline
    ends the attempt, and the log showed progress meanwhile."""
    import logging

    from bertlens import corpus

    monkeypatch.setattr(corpus, "_PROGRESS_EVERY", 0.3)
    with serve({"/big.tsv": Trickle(TSV * 200, piece=100, delay=0.1)}) as base:
        url = f"{base}/big.tsv"
        with (
            caplog.at_level(logging.INFO, logger="bertlens.corpus"),
            pytest.raises(UserError) as err,
        ):
            download(url, tmp_path / "big.tsv", fmt="tsv", deadline=1.0, retries=2, **FAST)
        assert base.counts["/big.tsv"] == 1  # not retried: the next attempt would be as slow
    msg = str(err.value)
    assert msg.startswith(
        f"download of {url} did not finish within corpus.download.deadline (1 s): got "
    )
    assert f"of {len(TSV) * 200} bytes" in msg
    assert msg.endswith(
        "raise the deadline, or download the file yourself and use 'path:' instead of 'url:'"
    )
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("downloading")]
    assert len(progress) >= 2 and all(url in line for line in progress)
    assert _folder_files(tmp_path) == []


def test_non_ascii_url_is_encoded(tmp_path):
    with serve({"/コーパス/やさしい.tsv": Bytes(TSV, "text/plain")}) as base:
        url = f"{base}/コーパス/やさしい.tsv?版=2"
        facts = download(url, tmp_path / "c.tsv", fmt="tsv", **FAST)
        assert base.counts["/コーパス/やさしい.tsv"] == 1
    assert facts["url"] == url
    assert (tmp_path / "c.tsv").read_bytes() == TSV
