"""The demo's embedded setup (SQLite + the filesystem broker, nothing else running), in a real
browser: a job queued from the form waits with "no worker" and the command to start one while
only the web server runs; under scripts/serve.sh (web server + worker + beat, as the demo
ends) the same job runs to done; Ctrl+C stops all three processes."""
from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.evaluation.test_embedded_default import embedded_env, manage
from tests.tiny_models import build_tiny_causal_lm
from tests.worker_utils import REPO_ROOT, closed_port

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.slow]

DEMO_PASSWORD = "toxplatform-demo"
JOB_TIMEOUT_MS = 300_000  # a loaded 2-core machine: generation and scoring of 4 prompts x k=2


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"server exited with {process.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in {timeout} s")


def children_of(pid: int) -> set[int]:
    """Every descendant of `pid` (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def log_in(page, base: str, next_path: str) -> None:
    page.goto(base + next_path)
    page.get_by_label("Username").fill("researcher")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**{next_path}")


@pytest.fixture
def embedded(tmp_path):
    var_dir = tmp_path / "var"
    env = embedded_env(var_dir) | {"TOXPLATFORM_WORKER_HEARTBEAT_SECONDS": "2", "PYTHONUNBUFFERED": "1"}
    manage(env, "migrate", "--no-input", "-v", "0")
    manage(env, "shell", "-c", "from tests.worker_utils import make_dataset; make_dataset(slug='rtp-lx', per_language=2)")
    manage(env, "create_demo_users")
    return env, var_dir, build_tiny_causal_lm(tmp_path / "tiny-llama", arch="llama")


def test_a_job_queued_in_the_browser_waits_without_a_worker_and_runs_under_serve_sh(chromium, embedded, tmp_path):
    env, var_dir, model_dir = embedded
    port = closed_port()
    base = f"http://127.0.0.1:{port}"
    context = chromium.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    # 1. Only the web server, as before this issue: the job waits, and the page says why.
    web = subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                           cwd=REPO_ROOT, env=env, stdout=open(tmp_path / "web.log", "wb"), stderr=subprocess.STDOUT)
    try:
        wait_for_http(base + "/healthz", web)
        log_in(page, base, "/evaluation/jobs/new/")
        page.get_by_label("…or a model path or name").fill(str(model_dir))
        assert page.get_by_label("English (en)").is_checked() and page.get_by_label("German (de)").is_checked()
        page.get_by_label("Prompts per language").fill("2")
        page.get_by_label("Samples per prompt (k)").fill("2")
        page.get_by_label("Max new tokens").fill("4")
        size = page.locator("[data-size-text]")
        assert size.inner_text().startswith("4 prompts (2 languages) × k = 2 samples × 4 new tokens = 32 tokens")
        page.get_by_role("button", name="Queue job").click()
        page.wait_for_url("**/evaluation/jobs/*/")
        job_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
        notice = page.locator("[data-worker-notice]")
        assert "No worker is running for this job." in notice.inner_text()
        assert "celery -A toxplatform worker -Q generate,score" in notice.inner_text()
        assert "waiting for a worker" in page.locator("[data-progress-text]").inner_text()
        page.goto(base + "/evaluation/jobs/")
        assert "No worker for generate, score" in page.locator(f"tr:has(a[href='/evaluation/jobs/{job_id}/'])").inner_text()
    finally:
        web.send_signal(signal.SIGINT)
        web.wait(30)

    # 2. scripts/serve.sh, as the demo ends: the worker takes the queued job and runs it to done.
    serve = subprocess.Popen(["bash", "scripts/serve.sh"], cwd=REPO_ROOT, env=env | {"PORT": str(port), "PY": sys.executable},
                             stdout=open(tmp_path / "serve.log", "wb"), stderr=subprocess.STDOUT)
    try:
        wait_for_http(base + "/healthz", serve)
        page.goto(base + f"/evaluation/jobs/{job_id}/")
        # The page polls its progress and reloads when the job ends.
        page.locator(".page-head [data-status]").filter(has_text="done").wait_for(timeout=JOB_TIMEOUT_MS)
        assert page.locator("[data-worker-notice]").count() == 0
        assert page.locator("table.results").count() >= 1
        processes = children_of(serve.pid)
        assert len(processes) >= 3  # worker (and its pool child), beat, web server
    finally:
        serve.send_signal(signal.SIGINT)  # Ctrl+C
        serve.wait(60)
    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in processes) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not [pid for pid in processes if alive(pid)], (tmp_path / "serve.log").read_text()[-3000:]
    with sqlite3.connect(var_dir / "toxplatform.sqlite3", timeout=30) as db:
        assert db.execute("SELECT status FROM evaluation_evaluationjob WHERE id = ?", (job_id,)).fetchone()[0] == "done"
        assert db.execute("SELECT count(*) FROM evaluation_workerheartbeat WHERE stopped_at IS NULL").fetchone()[0] == 0
    assert errors == []
    context.close()
