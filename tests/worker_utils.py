"""Start and stop a real Celery worker process for pipeline tests.

The worker is `celery -A toxplatform worker` in a subprocess, on the same PostgreSQL test
database as the test (the test must use `transactional_db`, so its rows are committed and
visible to the worker) and on the Redis database the test run uses (CELERY_BROKER_URL).

    with CeleryWorker(log_path=tmp_path / "worker.log") as worker:
        ...                      # queue jobs, poll the database
        worker.kill()            # SIGKILL the whole process group: a machine that died

The worker runs in its own session, so kill() takes its pool children down with it.
Below the worker: the small dataset, model spec and checks the pipeline tests share.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis
from django.conf import settings
from django.db import connection

from toxplatform import queues

REPO_ROOT = Path(settings.BASE_DIR)


def worker_database_url() -> str:
    """A DATABASE_URL for the database the test runs on (the test database, not the main one)."""
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def broker() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def queue_lengths() -> dict[str, int]:
    """Messages waiting in each pipeline queue of the test's Redis database."""
    client = broker()
    return {name: client.llen(name) for name in queues.ALL}


def flush_broker() -> None:
    broker().flushdb()


class CeleryWorker:
    def __init__(self, *, log_path: Path, queue_names=queues.ALL, env: dict | None = None):
        self.log_path = Path(log_path)
        self.queue_names = ",".join(queue_names)
        self.extra_env = env or {}
        self.name = f"test-{uuid.uuid4().hex[:8]}@%h"
        self.process: subprocess.Popen | None = None
        self._log = None
        self._log_start = 0

    def start(self, timeout: float = 90) -> CeleryWorker:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "toxplatform.settings",
            "DATABASE_URL": worker_database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "TOXPLATFORM_VAR_DIR": str(settings.VAR_DIR),
            "TOXPLATFORM_MODEL_CACHE": str(settings.MODEL_CACHE_DIR),
            # Connections closed after each task: nothing lingers when the test database is flushed.
            "DB_CONN_MAX_AGE": "0",
            "PYTHONUNBUFFERED": "1",
            # Tiny models on a small shared machine: one torch thread. More threads than free
            # cores make OpenMP spin against each other (seen: 40x slower generation).
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            **self.extra_env,
        }
        command = [
            sys.executable, "-m", "celery", "-A", "toxplatform", "worker",
            "-Q", self.queue_names, "-c", "1", "-P", "prefork", "--loglevel=info", "-n", self.name,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]
        self._log = open(self.log_path, "ab")
        self._log_start = self.log_path.stat().st_size
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log():
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"celery worker not ready after {timeout} s:\n{self.log()}")

    def mark(self) -> None:
        """From now on log() shows only what comes next (a worker shared by several tests)."""
        self._log_start = self.log_path.stat().st_size

    def log(self) -> str:
        """What this worker wrote since it started (or since mark())."""
        with open(self.log_path, "rb") as handle:
            handle.seek(self._log_start)
            return handle.read().decode(errors="replace")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, as when a machine dies."""
        if self.running:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._reap(10)

    def stop(self, timeout: float = 20) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it does not end in time."""
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def _reap(self, timeout: float) -> None:
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            try:  # children left over after a warm shutdown of the main process
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> CeleryWorker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for(condition, *, timeout: float, interval: float = 0.2, message: str = "condition", worker=None):
    """Poll until condition() is truthy; fail with the worker's log when it does not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    log = worker.log()[-6000:] if worker is not None else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {message}\n--- worker log ---\n{log}")


# --- pipeline test data and checks ------------------------------------------------------------

JOB_TIMEOUT = 120


def closed_port() -> int:
    """A local port nothing listens on (an endpoint that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PROMPT_TEXTS = {
    "en": ["The weather today is", "My neighbour told me that", "After the match the fans", "She opened the door"],
    "de": ["Das Wetter heute ist", "Mein Nachbar sagte mir, dass", "Nach dem Spiel haben die Fans", "Sie öffnete"],
    "fr": ["Le temps aujourd'hui est", "Mon voisin m'a dit que", "Après le match les supporters", "Elle ouvrit"],
}


def make_dataset(slug: str = "tiny", languages=("en", "de"), per_language: int = 3):
    """A dataset with `per_language` prompts per language; transcreation groups g0, g1, ...
    are shared across languages; even-numbered prompts are toxic by source."""
    from toxplatform.corpus.models import Dataset, Prompt

    dataset = Dataset.objects.create(slug=slug, name=f"Tiny {slug}", format="jsonl")
    Prompt.objects.bulk_create(
        Prompt(
            dataset=dataset, language_id=language, external_id=f"{language}-{i}", group_id=f"g{i}",
            text=f"{PROMPT_TEXTS[language][i % len(PROMPT_TEXTS[language])]} ({i})", is_toxic=i % 2 == 0,
        )
        for language in languages
        for i in range(per_language)
    )
    return dataset


def model_spec_for(path, name: str = "tiny-llama"):
    from evaluation.models import ModelSpec

    return ModelSpec.objects.create(name=name, backend="hf", location=str(path), dtype="float32",
                                    device="cpu")


def create_test_job(model_dir, *, languages=("en", "de"), per_language=3, **overrides):
    """A job on a fresh tiny dataset, the tiny model in model_dir, lexicon + perplexity scorers."""
    from evaluation import services

    dataset = make_dataset(languages=languages, per_language=per_language)
    args = dict(
        model=model_spec_for(model_dir), method="none", method_params={}, dataset=dataset,
        languages=list(languages), categories=[], prompt_split="all", prompts_per_language=None, k=3,
        max_new_tokens=4, top_p=0.9, temperature=1.0, seed=0,
        scorers=["lexicon", {"name": "perplexity", "params": {"path": str(model_dir)}}],
        batch_size=2, chunk_size=2, toxic_threshold=0.5, threshold_rule=">=",
    )
    args.update(overrides)
    return services.create_job(**args)


def job_status(job) -> str:
    from evaluation.models import EvaluationJob

    return EvaluationJob.objects.values_list("status", flat=True).get(pk=job.pk)


def wait_until_finished(job, worker, timeout=JOB_TIMEOUT):
    from evaluation.models import EvaluationJob

    wait_for(lambda: job_status(job) in EvaluationJob.TERMINAL, timeout=timeout, worker=worker,
             message=f"job {job.pk} to finish")
    job.refresh_from_db()
    return job


def assert_complete(job, scores_per_generation=3):
    """Exactly k generations per prompt and one score per (generation, scorer, category)."""
    from django.db.models import Count

    from evaluation.models import Chunk, Generation, JobPrompt, Score

    per_prompt = dict(Generation.objects.filter(job=job).values_list("prompt").annotate(n=Count("id")))
    prompt_ids = set(JobPrompt.objects.filter(job=job).values_list("prompt_id", flat=True))
    assert set(per_prompt) == prompt_ids
    assert set(per_prompt.values()) == {job.k}
    assert set(Generation.objects.filter(job=job).values_list("sample_index", flat=True)) == set(range(job.k))
    per_generation = Score.objects.filter(generation__job=job).values("generation").annotate(n=Count("id"))
    assert len(per_generation) == len(prompt_ids) * job.k
    assert {row["n"] for row in per_generation} == {scores_per_generation}
    assert not job.chunks.exclude(status=Chunk.Status.DONE).exists()
