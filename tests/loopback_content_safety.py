"""A real HTTP server on 127.0.0.1 that speaks Azure AI Content Safety's text analysis (tests).

    with LoopbackContentSafety(key="k") as server:
        server.fail_next(2, status=429, retry_after="0")
        ... settings.AZURE_CONTENT_SAFETY_ENDPOINT = server.url ...

POST /contentsafety/text:analyze?api-version=2023-10-01 with the key in
Ocp-Apim-Subscription-Key; body {"text", "categories", "outputType"}. As the service does,
it refuses a missing or wrong key (401), an unknown api-version or route (404), and a text
over 10,000 characters, an unknown category or output type (400, code InvalidRequestBody).
Severities are deterministic: `severity(text, category)` on the 0-7 scale (default: the
number of times the category's marker word occurs in the text, at most 7; markers are
"hate", "selfharm", "sexual", "violence"); FourSeverityLevels answers round down to 0/2/4/6
as the service's documentation describes.

Switches: fail_next(count, status, retry_after), delay_s, answer (a dict to send instead of
a computed one). Records: requests (bodies), queries, times (monotonic, per request),
max_in_flight.
"""
from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler

from tests.loopback_server import LoopbackServer
from urllib.parse import parse_qs, urlsplit

CATEGORIES = ("Hate", "SelfHarm", "Sexual", "Violence")
MARKERS = {"Hate": "hate", "SelfHarm": "selfharm", "Sexual": "sexual", "Violence": "violence"}


def marker_severity(text: str, category: str) -> int:
    return min(7, text.lower().count(MARKERS[category]))


class LoopbackContentSafety(LoopbackServer):
    def __init__(self, key: str = "loopback-key", severity=marker_severity):
        self.key = key
        self.severity = severity
        self.delay_s = 0.0
        self.answer: dict | None = None
        self.requests: list[dict] = []
        self.queries: list[dict] = []
        self.times: list[float] = []
        self._failures: list[tuple[int, str | None]] = []
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, count: int, status: int = 500, retry_after: str | None = None):
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
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

            def _error(self, status: int, code: str, message: str, headers: dict | None = None):
                self._send(status, {"error": {"code": code, "message": message, "details": []}}, headers)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with server.in_flight():
                    self._answer(raw)

            def _answer(self, raw: bytes):
                parts = urlsplit(self.path)
                query = {name: values[0] for name, values in parse_qs(parts.query).items()}
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    return self._error(400, "InvalidRequestBody", "The request body is not valid JSON.")
                with server._lock:
                    server.requests.append(body)
                    server.queries.append(query)
                    server.times.append(time.monotonic())
                    failure = server._failures.pop(0) if server._failures else None
                if server.delay_s:
                    time.sleep(server.delay_s)
                if failure:
                    status, retry_after = failure
                    headers = {"Retry-After": retry_after} if retry_after is not None else {}
                    return self._error(status, str(status), f"Echo of the text: {body.get('text', '')[:50]}", headers)
                if self.headers.get("Ocp-Apim-Subscription-Key") != server.key:
                    # The service's 401 text; the test checks that no body reaches an error.
                    return self._error(401, "401", "Access denied due to invalid subscription key or wrong API endpoint.")
                if parts.path != "/contentsafety/text:analyze":
                    return self._error(404, "NotFound", "Resource not found")
                if query.get("api-version") != "2023-10-01":
                    return self._error(404, "NotFound", "The API version is not supported")
                text, categories = body.get("text"), body.get("categories") or list(CATEGORIES)
                output = body.get("outputType", "FourSeverityLevels")
                if not isinstance(text, str) or len(text) > 10_000:
                    return self._error(400, "InvalidRequestBody", "Text length exceeds the limit of 10000.")
                if any(c not in CATEGORIES for c in categories) or output not in ("FourSeverityLevels", "EightSeverityLevels"):
                    return self._error(400, "InvalidRequestBody", "Invalid category or output type.")
                if server.answer is not None:
                    return self._send(200, server.answer)
                analysis = []
                for category in categories:
                    severity = server.severity(text, category)
                    if output == "FourSeverityLevels":
                        severity = severity // 2 * 2
                    analysis.append({"category": category, "severity": severity})
                self._send(200, {"blocklistsMatch": [], "categoriesAnalysis": analysis})

        return Handler
