import pytest


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Login throttles and API rate limits count in the cache: each test starts at zero."""
    from django.core.cache import cache

    cache.clear()
