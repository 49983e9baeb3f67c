"""A stand-in for an incoming webhook (Slack-compatible) on loopback, for paging tests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from stackcheck.report.escalation import ESCALATE, OPEN, RESOLVE

# The secret part of the receiver's URL: no output may ever show it.
SECRET = "T000/B000/XXXXsecretXXXX"


class Receiver:
    """An incoming-webhook stand-in on loopback: ``mode`` ok | fail (500) | hang."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.posts: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.posts.append(json.loads(body))
                receiver.paths.append(self.path)
                if receiver.mode == "hang":
                    receiver.release.wait(30)
                    return
                status = 500 if receiver.mode == "fail" else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"boom")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/services/{SECRET}"

    def events(self) -> list[str]:
        found = []
        for post in self.posts:
            head = post["text"].splitlines()[0]
            found.append(OPEN if "opened" in head else ESCALATE if "ESCALATE" in head else RESOLVE)
        return found

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
