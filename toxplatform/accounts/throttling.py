"""Failed sign-ins, counted per account and per client address in the shared cache.

Every failed `authenticate()` (login page, API token, admin) counts through Django's
`user_login_failed` signal. Once an account or an address has LOGIN_FAILURE_LIMIT failures
(LOGIN_FAILURE_LIMIT_PER_ADDRESS for an address, which many people may share) within
LOGIN_FAILURE_WINDOW_S of the last one, sign-ins are refused before the password is looked
at, so a correct guess is refused too and teaches an attacker nothing. The counters live in
the default cache (Redis in production, `CACHE_URL`): every web process sees the same ones.
"""
from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.dispatch import receiver
from rest_framework.throttling import BaseThrottle

KEY_PREFIX = "login-failures"


def message() -> str:
    minutes = max(1, round(settings.LOGIN_FAILURE_WINDOW_S / 60))
    return (
        "Too many failed sign-in attempts for this account or from this address. "
        f"Try again in {minutes} minutes."
    )


def client_address(request) -> str:
    """The client's address as DRF's throttles see it (REST_FRAMEWORK NUM_PROXIES)."""
    return BaseThrottle().get_ident(request) or "unknown"


def _keys(request, username) -> list[tuple[str, int]]:
    keys = []
    if username:
        digest = hashlib.sha256(str(username).strip().lower().encode()).hexdigest()
        keys.append((f"{KEY_PREFIX}:user:{digest}", settings.LOGIN_FAILURE_LIMIT))
    if request is not None:
        keys.append((f"{KEY_PREFIX}:addr:{client_address(request)}", settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS))
    return keys


def is_blocked(request, username) -> bool:
    counts = cache.get_many([key for key, _ in _keys(request, username)])
    return any(counts.get(key, 0) >= limit for key, limit in _keys(request, username))


def record_failure(request, username) -> None:
    for key, _ in _keys(request, username):
        cache.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW_S)
        try:
            cache.incr(key)  # atomic on Redis
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_S)
        # The window runs from the last failure (some backends' incr also resets the timeout).
        cache.touch(key, settings.LOGIN_FAILURE_WINDOW_S)


def record_success(request, username) -> None:
    """A right password clears the account's count (not the address's: it may be shared)."""
    cache.delete_many([key for key, _ in _keys(None, username)])


@receiver(user_login_failed)
def _count_failure(sender, credentials, request=None, **kwargs):
    record_failure(request, (credentials or {}).get("username"))
