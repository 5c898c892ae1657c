"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests (shared test helper).

    with LoopbackOpenAI() as server:          # port 0: the OS picks a free one
        server.fail_next(2, status=429, retry_after="0")
        ... OpenAIGenerator(location=server.url) ...
        assert server.max_in_flight <= 4

Endpoints: POST /v1/completions, POST /v1/chat/completions, GET /v1/models.
Answers are deterministic: by default choice i of a request is
"<model> says <i>/<seed>: <last words of the prompt>", so tests can see which prompt,
seed and index produced a sample. Pass `responder(kind, body, index) -> str` to answer
otherwise (an LLM judge's test can return "Score: 3").

Switches (attributes, change them between requests): fail_next(count, status, ...),
max_n (cap the choices per request), delay_s (sleep before answering), reject (status,
message: answer every request with that error), require_api_key.
Records: requests (the JSON bodies, in order), headers, max_in_flight.
"""
from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler

from tests.loopback_server import LoopbackServer


class LoopbackOpenAI(LoopbackServer):
    def __init__(self, model: str = "loopback-model", responder=None):
        self.model = model
        self.responder = responder or self.default_responder
        self.max_n: int | None = None
        self.delay_s = 0.0
        self.reject: tuple[int, str] | None = None
        self.require_api_key: str | None = None
        self.requests: list[dict] = []
        self.paths: list[str] = []
        self.headers: list[dict] = []
        self._failures: list[tuple[int, str, str | None]] = []
        super().__init__()

    # --- address ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- switches --------------------------------------------------------------------
    def fail_next(self, count: int, status: int = 500, message: str = "try again", retry_after: str | None = None):
        """The next `count` POSTs fail with `status` (and a Retry-After header if given)."""
        with self._lock:
            self._failures.extend([(status, message, retry_after)] * count)

    @staticmethod
    def default_responder(kind: str, body: dict, index: int) -> str:
        if kind == "chat":
            source = body["messages"][-1]["content"]
        else:
            source = body["prompt"]
        tail = " ".join(str(source).split()[-3:])
        return f"{body.get('model')} says {index}/{body.get('seed')}: {tail}"

    # --- the handler -------------------------------------------------------------------
    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status: int, payload: dict, headers: dict | None = None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with server.in_flight():
                    self._answer(raw)

            def _answer(self, raw: bytes):
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    return self._send(400, {"error": {"message": "body is not JSON"}})
                with server._lock:
                    server.requests.append(body)
                    server.paths.append(self.path)
                    server.headers.append(dict(self.headers))
                    failure = server._failures.pop(0) if server._failures else None
                if server.delay_s:
                    time.sleep(server.delay_s)
                if failure:
                    status, message, retry_after = failure
                    headers = {"Retry-After": retry_after} if retry_after is not None else {}
                    return self._send(status, {"error": {"message": message}}, headers)
                if server.reject:
                    status, message = server.reject
                    return self._send(status, {"error": {"message": message, "type": "invalid_request_error"}})
                if server.require_api_key and self.headers.get("Authorization") != f"Bearer {server.require_api_key}":
                    return self._send(401, {"error": {"message": "Incorrect API key provided"}})
                path = self.path.rstrip("/")
                if path == "/v1/completions":
                    kind = "completion"
                elif path == "/v1/chat/completions":
                    kind = "chat"
                else:
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if body.get("model") != server.model:
                    return self._send(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
                n = int(body.get("n") or 1)
                if server.max_n is not None:
                    n = min(n, server.max_n)
                max_tokens = int(body.get("max_tokens") or 16)
                choices, total = [], 0
                for index in range(n):
                    words = server.responder(kind, body, index).split(" ")
                    finish = "length" if len(words) >= max_tokens else "stop"
                    text = " ".join(words[:max_tokens])
                    total += min(len(words), max_tokens)
                    if kind == "chat":
                        choices.append(
                            {"index": index, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
                        )
                    else:
                        choices.append({"index": index, "text": text, "finish_reason": finish})
                usage = {"prompt_tokens": 1, "completion_tokens": total, "total_tokens": total + 1}
                self._send(200, {"id": "cmpl-loopback", "object": kind, "model": server.model, "choices": choices, "usage": usage})

        return Handler
