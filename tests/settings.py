"""Test settings: PostgreSQL and Redis for real (the services every dev and CI machine runs).

TEST_DB_SUFFIX keeps parallel test runs on one machine from sharing a test database.
"""
import os
import tempfile

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("TOXPLATFORM_VAR_DIR", tempfile.mkdtemp(prefix="toxplatform-test-"))
# Set in the environment, not below: worker subprocesses (toxplatform.settings) inherit them.
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-never-used-in-production-0123456789")
# The test client and the browser tests' live server speak plain HTTP.
os.environ.setdefault("TOXPLATFORM_HTTPS", "false")
# Tests talk to OpenAI-compatible servers on loopback (tests/loopback_openai.py): allowed
# here explicitly, as an operator would allow an in-house server's network.
os.environ.setdefault("TOXPLATFORM_ENDPOINT_NETWORKS", "127.0.0.0/8,::1/128")
# Tests build tiny models under pytest's temporary folders.
os.environ.setdefault("TOXPLATFORM_MODEL_ROOTS", tempfile.gettempdir())

from toxplatform.settings import *  # noqa: E402,F401,F403
from toxplatform.settings import DATABASES  # noqa: E402

DATABASES["default"]["TEST"] = {"NAME": "test_toxplatform" + os.environ.get("TEST_DB_SUFFIX", "")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
