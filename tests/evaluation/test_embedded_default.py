"""The embedded default, as the demo and a laptop run it: nothing set, so SQLite under the
var folder and kombu's filesystem broker (no server). `manage.py evaluate --queue` sends the
job's tasks into the broker folders and a real Celery worker process, started the way the
README says, runs it to the end. Everything here runs in subprocesses with their own
environment; the test process only reads the SQLite file."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tiny_models import build_tiny_causal_lm
from tests.worker_utils import REPO_ROOT, CeleryWorker

pytestmark = [pytest.mark.worker, pytest.mark.slow]

MAKE_DATASET = "from tests.worker_utils import make_dataset; make_dataset(per_language=3)"


def embedded_env(var_dir: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    return env | {
        "DJANGO_SETTINGS_MODULE": "toxplatform.settings",
        "TOXPLATFORM_VAR_DIR": str(var_dir),
        "TOXPLATFORM_MODEL_CACHE": str(var_dir / "models"),
        "OMP_NUM_THREADS": "1",
    }


def manage(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def job_row(database: Path, job_id: int) -> dict:
    with sqlite3.connect(database, timeout=30) as connection:
        connection.row_factory = sqlite3.Row
        row = connection.execute("SELECT status, error, total_prompts, k FROM evaluation_evaluationjob WHERE id = ?",
                                 (job_id,)).fetchone()
        counts = {
            table: connection.execute(query, (job_id,)).fetchone()[0]
            for table, query in {
                "generations": "SELECT count(*) FROM evaluation_generation WHERE job_id = ?",
                "scores": "SELECT count(*) FROM evaluation_score s JOIN evaluation_generation g"
                          " ON s.generation_id = g.id WHERE g.job_id = ?",
                "emt": "SELECT count(*) FROM evaluation_jobmetric WHERE job_id = ? AND metric = 'emt'",
            }.items()
        }
    return {**dict(row), **counts}


def test_a_queued_job_runs_on_sqlite_and_the_filesystem_broker(tmp_path):
    var_dir = tmp_path / "var"
    env = embedded_env(var_dir)
    model_dir = build_tiny_causal_lm(tmp_path / "tiny-llama", arch="llama")
    manage(env, "migrate", "--no-input", "-v", "0")
    manage(env, "shell", "-c", MAKE_DATASET)
    queued = manage(env, "evaluate", "--model", str(model_dir), "--dataset", "tiny", "--languages", "en", "de",
                    "--k", "2", "--max-new-tokens", "4", "--scorer", "lexicon", "--chunk-size", "2", "--queue")
    job_id = int(queued.split("Queued job ", 1)[1].split()[0])
    database = var_dir / "toxplatform.sqlite3"
    # The tasks wait as files in the broker folder until a worker starts.
    assert list((var_dir / "broker" / "queue").iterdir())
    assert job_row(database, job_id)["status"] == "queued"

    worker_env = {"DATABASE_URL": f"sqlite:///{database}", "CELERY_BROKER_URL": "filesystem://",
                  "TOXPLATFORM_VAR_DIR": str(var_dir), "TOXPLATFORM_MODEL_CACHE": str(var_dir / "models")}
    with CeleryWorker(log_path=tmp_path / "worker.log", env=worker_env) as worker:
        deadline = time.monotonic() + 240
        while job_row(database, job_id)["status"] not in ("done", "failed", "cancelled"):
            assert time.monotonic() < deadline, worker.log()
            assert worker.running, worker.log()
            time.sleep(0.5)
        assert "filesystem" in worker.log()

    row = job_row(database, job_id)
    assert row["status"] == "done", row["error"]
    assert row["total_prompts"] == 6 and row["generations"] == 6 * 2
    assert row["scores"] == 6 * 2 * 2  # lexicon: toxicity and profanity per generation
    assert row["emt"] > 0
