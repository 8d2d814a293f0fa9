"""A local HTTP server for the download tests: one file, ``Range`` answered as real servers do.

``GET /<name>`` answers 200 with the whole file, or with ``Range: bytes=N-`` 206 and
``Content-Range: bytes N-LAST/TOTAL`` (416 with ``Content-Range: bytes */TOTAL`` past the end).
Faults to order: ``drop_after`` sends that many body bytes of each answer and closes the
connection (the advertised Content-Length is not met); ``ignore_range`` answers every request
with the whole file, as servers without range support do. ``ranges`` logs each request's Range
header (None when absent). Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import http.server
import re
import threading


class FileServer:
    def __init__(self, data: bytes, name: str = "tiny-imagenet-200.zip"):
        self.data = data
        self.name = name
        self.drop_after: int | None = None
        self.ignore_range = False
        self.ranges: list[str | None] = []
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/{self.name}"

    def start(self) -> FileServer:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.answer(self)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def answer(self, h) -> None:
        asked = h.headers.get("Range")
        self.ranges.append(asked)
        if h.path != f"/{self.name}":
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        total = len(self.data)
        match = re.fullmatch(r"bytes=(\d+)-", asked or "")
        start = int(match.group(1)) if match and not self.ignore_range else 0
        if start >= total and match and not self.ignore_range:
            h.send_response(416)
            h.send_header("Content-Range", f"bytes */{total}")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        body = self.data[start:]
        h.send_response(206 if match and not self.ignore_range else 200)
        if match and not self.ignore_range:
            h.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
        h.send_header("Accept-Ranges", "none" if self.ignore_range else "bytes")
        h.send_header("Content-Type", "application/zip")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body if self.drop_after is None else body[: self.drop_after])
        h.wfile.flush()
        h.close_connection = True
