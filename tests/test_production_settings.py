"""Settings as production gets them: each case in a subprocess with only the documented
environment (docs/deploy.md), so nothing from the test settings leaks in."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

ROOT = Path(__file__).resolve().parent.parent
# What docker-compose.yml passes the web server with a minimal .env (docs/deploy.md).
PRODUCTION_ENV = {
    "SECRET_KEY": "Zq3-5dPr0Hk1Jx8mYv2Lw9Nc4Tb7Fs6Ge0Ru3Ia5Oq8Kz1Wy4Xh7Vj2Mn6Bp9Cd",
    "DATABASE_URL": "postgres://toxplatform:pw@postgres:5432/toxplatform",
    "CELERY_BROKER_URL": "redis://redis:6379/0",
    "CACHE_URL": "redis://redis:6379/1",
    "DEBUG": "false",
    "ALLOWED_HOSTS": "127.0.0.1,localhost,tox.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://tox.example.org",
    "TOXPLATFORM_MODEL_ROOTS": "/models",
}
SHOW = (
    "import json, django; django.setup(); from django.conf import settings as s;"
    "print(json.dumps({name: getattr(s, name, None) for name in %r}, default=str))"
)


def run(env: dict, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "toxplatform.settings",
           "TOXPLATFORM_VAR_DIR": str(tmp_path / "var"), **env}
    return subprocess.run([sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def show(env: dict, names: list[str], tmp_path: Path) -> dict:
    done = run(env, "-c", SHOW % (names,), tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_check_deploy_prints_no_warning_in_the_documented_production_environment(tmp_path):
    done = run(PRODUCTION_ENV, "manage.py", "check", "--deploy", "--fail-level", "WARNING", tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stdout + done.stderr


def test_a_server_setup_without_secret_key_refuses_to_start(tmp_path):
    env = {key: value for key, value in PRODUCTION_ENV.items() if key != "SECRET_KEY"}
    done = run(env, "manage.py", "check", tmp_path=tmp_path)
    assert done.returncode != 0
    assert "SECRET_KEY must be set" in done.stderr
    assert "insecure" not in done.stdout


def test_https_protections_are_on_by_default_when_debug_is_off(tmp_path):
    names = ["SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS", "SECURE_SSL_REDIRECT",
             "SECURE_PROXY_SSL_HEADER", "SECURE_REDIRECT_EXEMPT"]
    on = show(PRODUCTION_ENV, names, tmp_path)
    assert on["SESSION_COOKIE_SECURE"] and on["CSRF_COOKIE_SECURE"] and on["SECURE_SSL_REDIRECT"]
    assert on["SECURE_HSTS_SECONDS"] >= 31536000
    assert on["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert on["SECURE_REDIRECT_EXEMPT"] == ["^healthz$"]  # the container's healthcheck is plain HTTP
    # An operator without a TLS proxy turns them off explicitly; DEBUG turns them off too.
    for change in ({"TOXPLATFORM_HTTPS": "false"}, {"DEBUG": "true"}):
        off = show(PRODUCTION_ENV | change, names, tmp_path)
        assert not off["SESSION_COOKIE_SECURE"] and not off["SECURE_SSL_REDIRECT"], change
        assert off["SECURE_HSTS_SECONDS"] == 0 and off["SECURE_PROXY_SSL_HEADER"] is None, change


def test_embedded_runs_without_secret_key_on_a_random_key_of_its_own(tmp_path):
    """The demo (SQLite, http://127.0.0.1) needs no SECRET_KEY: it makes one, once, private."""
    first = show({}, ["SECRET_KEY", "SESSION_COOKIE_SECURE", "EMBEDDED"], tmp_path)
    again = show({}, ["SECRET_KEY"], tmp_path)
    assert first["EMBEDDED"] and not first["SESSION_COOKIE_SECURE"]
    assert len(first["SECRET_KEY"]) >= 50 and "insecure" not in first["SECRET_KEY"]
    assert again["SECRET_KEY"] == first["SECRET_KEY"]
    key_file = tmp_path / "var" / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    other = show({}, ["SECRET_KEY"], tmp_path / "elsewhere")
    assert other["SECRET_KEY"] != first["SECRET_KEY"]


@pytest.mark.parametrize("password, reason", [
    ("eleven-char", "too short"),
    ("password1234", "too common"),
    ("123456789012345", "entirely numeric"),
])
def test_password_validators_refuse_short_common_and_numeric_passwords(password, reason):
    with pytest.raises(ValidationError, match=reason):
        validate_password(password)


def test_the_demo_password_passes_the_validators():
    from toxplatform.accounts.management.commands.create_demo_users import Command

    demo_password = next(a for a in Command().create_parser("manage.py", "create_demo_users")._actions
                         if a.dest == "password").default
    assert demo_password == "toxplatform-demo"  # the README and scripts/demo.sh print it
    validate_password(demo_password)
