"""One error family for everything a user can see: pages, API responses and CLI output."""


class ApplicationError(Exception):
    def __init__(self, message: str, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}

    def __str__(self) -> str:
        if not self.extra:
            return self.message
        details = ", ".join(f"{k}={v}" for k, v in self.extra.items())
        return f"{self.message} ({details})"


class TransientError(ApplicationError):
    """A failure that may succeed next time (timeouts, HTTP 429 / 5xx): retried with backoff."""
