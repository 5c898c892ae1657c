"""A JSON-over-HTTP client with retries, the one every outbound call uses: the openai
generator, the llm_judge scorer and the azure_content_safety scorer.

    client = RetryingClient(headers={"Authorization": "Bearer ..."}, timeout_s=30, max_retries=5)
    data = client.post_json(url, {"...": ...})

- Connection errors, timeouts and HTTP 408/409/425/429/5xx are retried up to `max_retries`
  times with exponential backoff and full jitter (concurrent clients that failed together
  do not retry together); a Retry-After header (seconds or an HTTP date) is honoured up to
  `max_backoff_s`.
- Any other 4xx is an ApplicationError at once; 401/403 say the key was refused (`auth_hint`
  tells where the key comes from) and never include the key.
- `describe(response)` makes the text an error shows of a failed response. The default says
  only the status and the server's error *code* (a short identifier), never the body, since
  bodies of hosted APIs can echo the input text. The openai generator passes its own.
- `on_refusal(response)` sees every non-2xx response first and may raise an exception of its
  own (the openai generator: a server that caps `n`, as llama.cpp does) or log it.
- The answer must be a JSON object.
- `min_interval_s` spaces the *starts* of requests across all threads of one client: a
  client-side rate limit for APIs with a requests-per-second quota.
- One requests.Session per thread (Session is not thread-safe).
"""
from __future__ import annotations

import email.utils
import random
import re
import threading
import time
from collections.abc import Callable

import requests

from toxplatform import outbound
from toxplatform.errors import ApplicationError

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
AUTH_STATUS = {401, 403}


class Retryable(Exception):
    def __init__(self, reason: str, wait_s: float | None = None):
        super().__init__(reason)
        self.wait_s = wait_s


def retry_after_s(header: str | None) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")


def error_code(response: requests.Response) -> str:
    """The server's error code ({"error": {"code": "InvalidRequestBody"}} or its "type"),
    only when it looks like an identifier; "" otherwise. Never the message or the body."""
    try:
        data = response.json()
    except ValueError:
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        for field in ("code", "type"):
            value = error.get(field)
            if isinstance(value, str) and _CODE.match(value):
                return value
    return ""


def safe_description(response: requests.Response) -> str:
    code = error_code(response)
    return f"HTTP {response.status_code}: {response.reason or 'error'}" + (f" ({code})" if code else "")


class RateLimiter:
    """Starts at most one request per `interval_s`, across threads."""

    def __init__(self, interval_s: float):
        self.interval_s = max(0.0, interval_s)
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval_s:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval_s
        if start > now:
            time.sleep(start - now)


class RetryingClient:
    def __init__(
        self,
        *,
        headers: dict | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        min_interval_s: float = 0.0,
        describe: Callable[[requests.Response], str] = safe_description,
        context: dict | None = None,
        auth_hint: str = "",
        on_refusal: Callable[[requests.Response], None] | None = None,
    ):
        self.headers = dict(headers or {})
        self.timeout_s = timeout_s
        self.max_retries = max(0, max_retries)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.limiter = RateLimiter(min_interval_s)
        self.describe = describe
        self.context = dict(context or {})  # added to every error's extra (model name, ...)
        self.auth_hint = auth_hint
        self.on_refusal = on_refusal
        self._local = threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            session = requests.Session()
            session.headers.update(self.headers)
            self._local.session = session
        return self._local.session

    def post_json(self, url: str, body: dict, *, params: dict | None = None) -> dict:
        last_reason = ""
        for attempt in range(self.max_retries + 1):
            try:
                return self._post_once(url, body, params)
            except Retryable as exc:
                last_reason = str(exc)
                if attempt == self.max_retries:
                    break
                backoff = random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2**attempt))
                time.sleep(max(backoff, min(exc.wait_s or 0.0, self.max_backoff_s)))
        raise ApplicationError(f"cannot reach {url}: {last_reason}", {"attempts": self.max_retries + 1, **self.context})

    def _post_once(self, url: str, body: dict, params: dict | None) -> dict:
        self.limiter.wait()
        # The address rules every outbound request obeys (no loopback, private or link-local
        # target unless an operator allows its network), checked before each attempt.
        try:
            outbound.check_address(url)
        except outbound.Unresolvable as exc:
            raise Retryable(str(exc)) from None
        try:
            # No redirects: a redirect could lead to an address the check above refuses.
            response = self._session().post(url, json=body, params=params, timeout=self.timeout_s,
                                            allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise Retryable(f"{type(exc).__name__}: {_without_query(str(exc))}") from exc
        if response.status_code >= 300 and self.on_refusal:
            self.on_refusal(response)
        if response.status_code in RETRYABLE_STATUS:
            raise Retryable(self.describe(response), retry_after_s(response.headers.get("Retry-After")))
        if response.status_code in AUTH_STATUS and self.auth_hint:
            raise ApplicationError(f"{url} refused the key: {self.describe(response)}",
                                   {"fix": self.auth_hint, **self.context})
        if response.status_code >= 300:
            raise ApplicationError(f"{url} refused the request: {self.describe(response)}", self.context)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            # Never the body itself: it is not ours to show in a job's error.
            raise ApplicationError(f"{url} answered with something that is not a JSON object", self.context)
        return data


def _without_query(text: str) -> str:
    # requests puts the full URL in connection errors; a query string could hold a key.
    return re.sub(r"(https?://[^\s?'\"]+)\?[^\s'\"]*", r"\1?…", text)
