"""Test double for the paid OpenAI chat-completions service: a real HTTP server on 127.0.0.1.

It answers ``POST /v1/chat/completions`` like the OpenAI API (the subset the judge uses). Each reply
is scripted by ``responder(request_body, call_number) -> Reply``: a score text, an HTTP error, a delay
beyond the client's timeout, or a raw body that is not JSON at all. The server records every request
body and ``Authorization`` header, and the largest number of requests it ever had in flight at once.
"""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass(frozen=True)
class Reply:
    content: str = "Score: 7"
    status: int = 200
    delay_s: float = 0.0
    raw_body: bytes | None = None  # sent as is, instead of a chat-completion object


def prompt_text(body: dict) -> str:
    return next(part["text"] for part in body["messages"][-1]["content"] if part["type"] == "text")


def grade_by_reference(body: dict, call: int) -> Reply:
    """Score 10 when the graded answer equals the reference (default prompt layout), else 2."""
    text = prompt_text(body)
    reference = re.search(r"Reference answer: (.*)\n", text).group(1)
    answer = re.search(r"Answer to grade: (.*)\n", text).group(1)
    return Reply(f"Score: {10 if answer == reference else 2}")


class JudgeServer:
    """``with JudgeServer(responder) as server:`` then point the judge at ``server.base_url``."""

    def __init__(self, responder: Callable[[dict, int], Reply] = grade_by_reference):
        self.responder = responder
        self.requests: list[dict] = []
        self.authorizations: list[str | None] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "JudgeServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = json.loads(handler.rfile.read(int(handler.headers.get("Content-Length", 0))))
        with self._lock:
            call = len(self.requests)
            self.requests.append(body)
            self.authorizations.append(handler.headers.get("Authorization"))
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            reply = self.responder(body, call)
            time.sleep(reply.delay_s)
        finally:
            with self._lock:
                self._in_flight -= 1
        if reply.raw_body is not None:
            payload = reply.raw_body
        elif reply.status == 200:
            payload = json.dumps({
                "id": f"chatcmpl-test-{call}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", ""),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": reply.content}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }).encode()
        else:
            error = {"message": f"scripted status {reply.status}", "type": "server_error"}
            payload = json.dumps({"error": error}).encode()
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): nothing to answer

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.rstrip("/").endswith("/chat/completions"):
                    server._handle(self)
                else:
                    self.send_error(404)

            def log_message(self, format: str, *args) -> None:
                pass

        return Handler
