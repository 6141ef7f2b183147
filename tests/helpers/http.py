"""A real HTTP server on 127.0.0.1 for download tests, with scripted misbehaviour.

Usage::

    with serve({"/t15.xlsx": Bytes(data, XLSX), "/gone": 404, "/flaky": FailThenSucceed(1, ...)}) as base:
        download(base + "/t15.xlsx", dest)
        assert base.counts["/flaky"] == 2

A route maps a URL path (query string ignored) to a behaviour:

* ``bytes`` or :class:`Bytes`: a 200 response (``Bytes`` can lie about Content-Length: announcing
  more bytes than it sends simulates a truncated download, fewer a body longer than announced;
  either way it closes the connection after the body; ``headers`` adds headers such as
  Content-Encoding);
* ``int`` or :class:`Status`: that HTTP status (404, 500, ...);
* ``str`` or :class:`Html`: an HTML page;
* :class:`FailThenSucceed`: a status (or the behaviour ``first``) ``failures`` times, then another
  behaviour;
* :class:`Slow`: waits ``delay`` seconds before the headers (or, ``after_headers=True``, after the
  headers and part of the body), then behaves like ``then``;
* :class:`Chunked`: a chunked response, optionally cut off before its end;
* :class:`Trickle`: the body a few bytes at a time (for the overall download deadline);
* :class:`Drop`: closes the connection without any response.

Routes are matched on the percent-decoded path. Paths that are not in ``routes`` get 404. Every request is counted per path in ``base.counts``.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class Bytes:
    body: bytes
    content_type: str = "application/octet-stream"
    content_length: int | None = None  # announce this many bytes (default: len(body))
    headers: dict[str, str] = field(default_factory=dict)  # e.g. {"Content-Encoding": "gzip"}


@dataclass
class Status:
    code: int
    body: bytes = b"error\n"


@dataclass
class Html:
    text: str = (
        "<!DOCTYPE html>\n<html><head><title>Download</title></head><body>Click here</body></html>"
    )
    code: int = 200


@dataclass
class FailThenSucceed:
    failures: int
    then: Any
    status: int = 503
    first: Any = None  # what the failures are (default: the status)
    _seen: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def next_behaviour(self) -> Any:
        with self._lock:
            self._seen += 1
            if self._seen > self.failures:
                return self.then
            return Status(self.status) if self.first is None else self.first


@dataclass
class Slow:
    delay: float
    then: Any = field(default_factory=lambda: Bytes(b"late\n", "text/plain"))
    after_headers: bool = False


@dataclass
class Chunked:
    """``Transfer-Encoding: chunked``; ``truncate`` hangs up before the terminating chunk."""

    body: bytes
    content_type: str = "application/octet-stream"
    chunk: int = 4096
    truncate: bool = False


@dataclass
class Trickle:
    """A 200 response whose body comes ``piece`` bytes at a time, ``delay`` seconds apart (never
    idle long enough for a read timeout)."""

    body: bytes
    piece: int = 100
    delay: float = 0.1
    content_type: str = "application/octet-stream"


@dataclass
class Drop:
    """Close the connection without sending a status line."""


Behaviour = (
    bytes | int | str | Bytes | Status | Html | FailThenSucceed | Slow | Chunked | Trickle | Drop
)


class BaseURL(str):
    """The server's base URL (``http://127.0.0.1:PORT``) carrying per-path request counts."""

    counts: Counter
    server: ThreadingHTTPServer

    def url(self, path: str) -> str:
        return self + path


def _coerce(behaviour: Behaviour) -> Any:
    if isinstance(behaviour, bytes):
        return Bytes(behaviour)
    if isinstance(behaviour, int):
        return Status(behaviour)
    if isinstance(behaviour, str):
        return Html(behaviour)
    return behaviour


def _make_handler(
    routes: Mapping[str, Behaviour], counts: Counter, lock: threading.Lock, stop: threading.Event
):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            with lock:
                counts[path] += 1
            behaviour = _coerce(routes.get(path, Status(404, b"not found\n")))
            self._respond(behaviour)

        def _respond(self, b: Any) -> None:
            if isinstance(b, FailThenSucceed):
                return self._respond(_coerce(b.next_behaviour()))
            if isinstance(b, Slow):
                if not b.after_headers:
                    stop.wait(b.delay)
                    return self._respond(_coerce(b.then))
                then = _coerce(b.then)
                body = then.body if isinstance(then, Bytes) else b"x" * 1024
                ctype = then.content_type if isinstance(then, Bytes) else "text/plain"
                self._send(200, body[: len(body) // 2], ctype, len(body))
                stop.wait(b.delay)
                with contextlib.suppress(OSError):
                    self.wfile.write(body[len(body) // 2 :])
                self.close_connection = True
                return None
            if isinstance(b, Chunked):
                return self._send_chunked(b)
            if isinstance(b, Trickle):
                return self._send_trickle(b)
            if isinstance(b, Drop):
                self.close_connection = True
                return None
            if isinstance(b, Status):
                return self._send(b.code, b.body, "text/plain")
            if isinstance(b, Html):
                return self._send(b.code, b.text.encode("utf-8"), "text/html; charset=utf-8")
            if isinstance(b, Bytes):
                self._send(200, b.body, b.content_type, b.content_length, b.headers)
                if b.content_length is not None and b.content_length != len(b.body):
                    self.close_connection = True  # truncated: hang up early
                return None
            raise TypeError(f"unknown route behaviour {b!r}")

        def _send_chunked(self, b: Chunked) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.send_response(200)
                self.send_header("Content-Type", b.content_type)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                pieces = [b.body[i : i + b.chunk] for i in range(0, len(b.body), b.chunk)]
                if b.truncate:
                    pieces = pieces[: max(1, len(pieces) // 2)]
                for piece in pieces:
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                if not b.truncate:
                    self.wfile.write(b"0\r\n\r\n")

        def _send_trickle(self, b: Trickle) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.send_response(200)
                self.send_header("Content-Type", b.content_type)
                self.send_header("Content-Length", str(len(b.body)))
                self.end_headers()
                for i in range(0, len(b.body), b.piece):
                    if stop.wait(b.delay):
                        return
                    self.wfile.write(b.body[i : i + b.piece])
                    self.wfile.flush()

        def _send(
            self,
            code: int,
            body: bytes,
            ctype: str,
            length: int | None = None,
            headers: Mapping[str, str] | None = None,
        ) -> None:
            with contextlib.suppress(OSError):  # the client may have given up (timeouts)
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                if length is not None and length != len(body):
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

    return Handler


@contextlib.contextmanager
def serve(routes: Mapping[str, Behaviour]) -> Iterator[BaseURL]:
    """Run a ThreadingHTTPServer on 127.0.0.1 (a free port) in a thread; yield its base URL."""
    counts: Counter = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(routes, counts, lock, stop))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    host, port = server.server_address[:2]
    base = BaseURL(f"http://{host}:{port}")
    base.counts = counts
    base.server = server
    try:
        yield base
    finally:
        stop.set()  # wake sleeping Slow handlers
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
