"""A minimal Hugging Face Hub mirror on 127.0.0.1: what `HF_ENDPOINT` points at in a company or
a country that mirrors the hub. Serves model folders written by ``save_pretrained`` with the
endpoints huggingface_hub uses to download files (``/{repo}/resolve/{revision}/{file}``) and to
describe a repository (``/api/models/{repo}[/revision/{revision}]``)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@contextlib.contextmanager
def hub_mirror(repos: dict[str, Path]) -> Iterator[tuple[str, Counter]]:
    """Serve ``{repo_id: folder}``; yields (endpoint URL, request counter by path)."""
    counts: Counter[str] = Counter()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def _send(self, code: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(code)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            counts[path] += 1
            for repo, folder in repos.items():
                api = f"/api/models/{repo}"
                if path == api or path.startswith(api + "/revision/"):
                    info = {
                        "id": repo,
                        "modelId": repo,
                        "sha": COMMIT,
                        "siblings": [{"rfilename": p.name} for p in sorted(folder.iterdir())],
                    }
                    self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
                    return
                if path.startswith(api + "/tree/"):
                    # /api/models/{repo}/tree/{revision}[/{folder}]: list files of a folder
                    parts = path[len(api + "/tree/") :].split("/", 1)
                    sub = folder / parts[1] if len(parts) > 1 else folder
                    if not sub.is_dir():
                        self._send(404, b"Entry not found", {"X-Error-Code": "EntryNotFound"})
                        return
                    tree = [
                        {
                            "type": "file",
                            "path": str(p.relative_to(folder)),
                            "size": p.stat().st_size,
                        }
                        for p in sorted(sub.iterdir())
                    ]
                    self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"})
                    return
                prefix = f"/{repo}/resolve/"
                if path.startswith(prefix):
                    _, filename = path[len(prefix) :].split("/", 1)
                    file = folder / filename
                    if not file.is_file():
                        self._send(
                            404,
                            b"Entry not found",
                            {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT},
                        )
                        return
                    body = file.read_bytes()
                    etag = hashlib.sha256(body).hexdigest()
                    self._send(
                        200,
                        body,
                        {
                            "X-Repo-Commit": COMMIT,
                            "ETag": f'"{etag}"',
                            "Content-Type": "application/octet-stream",
                        },
                    )
                    return
            self._send(404, b"Repository not found", {"X-Error-Code": "RepoNotFound"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", counts
    finally:
        server.shutdown()
        server.server_close()
