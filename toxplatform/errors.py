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



def infrastructure_outages() -> tuple[type[BaseException], ...]:
    """A lost or refused connection to the database or the broker (a restart, a failover, a
    network blip): never the job's fault, so it must never fail a job. Work is handed back
    and tried again once the service answers (docs/architecture.md, "Faults").

    Django's OperationalError / InterfaceError cover a dropped or refused database
    connection (and serialization failures and deadlocks, which a retry also cures); kombu's
    OperationalError and redis's ConnectionError / TimeoutError a broker that is down.
    """
    from django.db import InterfaceError, OperationalError
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeout

    return (OperationalError, InterfaceError, BrokerError, RedisConnectionError, RedisTimeout)


def is_infrastructure_outage(error: BaseException) -> bool:
    return isinstance(error, infrastructure_outages())
