"""The platform in its deployed shape under real faults, ending each time with exactly the
results of an uninterrupted run, without anyone stepping in.

Deployed shape, private to this module: its own PostgreSQL and Redis (no persistence, as
deployed here), a generate worker (`-Q generate`), a score worker (`-Q score,celery`) and
beat, all real processes started the way docker-compose starts them. The shared servers
are never touched. Faults: Redis restarted mid-job (every queued message lost), PostgreSQL
restarted (short) and stopped for seconds, a worker SIGKILLed during generation, scoring
and finalize, a worker frozen (SIGSTOP: a machine gone dark, whose process this host
cannot see die), two workers per queue. Every scenario ends with the uninterrupted run's
texts, scores and metrics, the exact counts, and every task on the queue it belongs to.

The leases and the sweeper run on a short clock here (claim lease 3 s, sweep every 1 s, a
message overdue after 2 s); the deployed defaults are 45 s, 15 s and 60 s.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest

from tests.private_services import PrivatePostgres, PrivateRedis
from tests.tiny_models import build_tiny_causal_lm
from tests.worker_utils import CeleryWorker, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.worker]

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ("en", "de")
PER_LANGUAGE = 12
FAULT_CLOCK = {
    "TOXPLATFORM_CLAIM_LEASE_SECONDS": "3",
    "TOXPLATFORM_SWEEP_SECONDS": "1",
    "TOXPLATFORM_RESEND_AFTER_SECONDS": "2",
}
JOB_TIMEOUT = 180
# batch_size 1: a resumed chunk's prompts are generated alone as before, so even padding
# cannot move a logit and every text must be identical to the uninterrupted run's.
JOB_ARGS = ["--dataset", "faults", "--languages", *LANGUAGES, "--split", "all", "--prompts-per-language",
            str(PER_LANGUAGE), "--k", "2", "--max-new-tokens", "24", "--seed", "7", "--batch-size", "1",
            "--chunk-size", "3", "--scorer", "lexicon"]
TASK_RECEIVED = re.compile(r"Task (evaluation\.[a-z_]+)\[[0-9a-f-]+\] received")


class Deployment:
    """Private PostgreSQL + Redis, split workers and beat, driven from outside like an operator."""

    def __init__(self, folder: Path, model_dir: Path):
        self.folder = folder
        self.model_dir = model_dir
        self.pg = PrivatePostgres().start()
        self.redis = PrivateRedis().start()
        self.env = {
            "DATABASE_URL": self.pg.url, "CELERY_BROKER_URL": self.redis.url,
            "TOXPLATFORM_VAR_DIR": str(folder / "var"), "TOXPLATFORM_MODEL_CACHE": str(folder / "cache"),
            "TOXPLATFORM_MODEL_ROOTS": str(model_dir.parent), "SECRET_KEY": "faults-" + "x" * 50,
            "DB_CONN_MAX_AGE": "60", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **FAULT_CLOCK,
        }
        self.workers: dict[str, list[CeleryWorker]] = {"generate": [], "score": []}
        self.beat: subprocess.Popen | None = None
        self._reader = None  # the test's own database connection (query)

    # --- processes --------------------------------------------------------------------------

    def process_env(self) -> dict:
        return {**os.environ, "DJANGO_SETTINGS_MODULE": "toxplatform.settings", **self.env}

    def manage(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.process_env(),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start_worker(self, role: str) -> CeleryWorker:
        queue_names = ("generate",) if role == "generate" else ("score", "celery")
        index = len(self.workers[role])
        worker = CeleryWorker(log_path=self.folder / f"{role}-{index}.log", queue_names=queue_names, env=self.env)
        self.workers[role].append(worker.start())
        return worker

    def running(self, role: str) -> list[CeleryWorker]:
        return [worker for worker in self.workers[role] if worker.running]

    def ensure_workers(self) -> None:
        """One live worker per role (a previous scenario may have killed one), and beat."""
        for role in self.workers:
            if not self.running(role):
                self.start_worker(role)
        if self.beat is None or self.beat.poll() is not None:
            log = open(self.folder / "beat.log", "ab")
            self.beat = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "toxplatform", "beat", "--loglevel=info",
                 "--schedule", str(self.folder / "beat-schedule")],
                cwd=ROOT, env=self.process_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        """Every process's latest lines (what wait_for shows when a wait times out)."""
        parts = []
        for path in sorted(self.folder.glob("*.log")):
            parts.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-1500:]}")
        return "\n".join(parts)

    def close(self) -> None:
        for workers in self.workers.values():
            for worker in workers:
                if worker.running:
                    os.killpg(worker.process.pid, signal.SIGCONT)  # a frozen one must be able to die
                worker.kill()
        if self.beat is not None and self.beat.poll() is None:
            os.killpg(self.beat.pid, signal.SIGKILL)
            self.beat.wait(10)
        if self._reader is not None:
            self._reader.close()
        self.redis.stop()
        self.pg.stop()

    # --- the database, read from outside ------------------------------------------------------

    def query(self, sql: str, *params) -> list[tuple]:
        """One query on a kept connection (polls must be quick: a kill has to land inside a
        chunk that runs for a fraction of a second), reconnecting while the server restarts."""
        deadline = time.monotonic() + 30
        while True:
            try:
                if self._reader is None or self._reader.closed:
                    self._reader = psycopg2.connect(self.pg.url, connect_timeout=2)
                    self._reader.autocommit = True
                with self._reader.cursor() as cursor:
                    cursor.execute(sql, params)
                    return cursor.fetchall()
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self._reader = None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def job(self, job_id: int) -> dict:
        columns = ["status", "error", "total_prompts", "generated_prompts", "scored_prompts", "history"]
        row = self.query(f"SELECT {', '.join(columns)} FROM evaluation_evaluationjob WHERE id = %s", job_id)[0]
        return dict(zip(columns, row))

    def job_args(self) -> list[str]:
        # Perplexity under the model itself: a score chunk runs long enough to be caught and killed.
        return [*JOB_ARGS, "--scorer", "perplexity:" + json.dumps({"path": str(self.model_dir)})]

    def queue_job(self, name: str) -> int:
        out = self.manage("evaluate", "--queue", "--name", name, "--model", str(self.model_dir), *self.job_args())
        return int(re.search(r"Queued job (\d+)", out).group(1))

    def wait(self, condition, *, timeout: float, what: str, interval: float = 0.05):
        return wait_for(condition, timeout=timeout, interval=interval, message=what, worker=self)

    def wait_until_done(self, job_id: int) -> dict:
        self.wait(lambda: self.job(job_id)["status"] in ("done", "failed", "cancelled"), timeout=JOB_TIMEOUT,
                  what=f"job {job_id} to finish", interval=0.2)
        return self.job(job_id)

    def stage_over(self, job_id: int, stage: str) -> bool:
        return not self.query("SELECT 1 FROM evaluation_chunk WHERE job_id = %s AND stage = %s AND status <> 'done'",
                              job_id, stage)

    def running_chunk(self, job_id: int, stage: str) -> bool:
        return bool(self.query("SELECT 1 FROM evaluation_chunk WHERE job_id = %s AND stage = %s AND status = "
                               "'running'", job_id, stage))

    # --- what a job produced --------------------------------------------------------------------

    def results(self, job_id: int) -> dict:
        texts = self.query(
            "SELECT p.external_id, g.sample_index, g.text FROM evaluation_generation g "
            "JOIN corpus_prompt p ON p.id = g.prompt_id WHERE g.job_id = %s ORDER BY 1, 2", job_id)
        scores = self.query(
            "SELECT p.external_id, g.sample_index, s.scorer, s.category, s.value FROM evaluation_score s "
            "JOIN evaluation_generation g ON g.id = s.generation_id JOIN corpus_prompt p ON p.id = g.prompt_id "
            "WHERE g.job_id = %s ORDER BY 1, 2, 3, 4", job_id)
        metrics = self.query(
            "SELECT language_id, scorer, category, subset, metric, variant, value, n, ci_low, ci_high "
            "FROM evaluation_jobmetric WHERE job_id = %s ORDER BY 1, 2, 3, 4, 5, 6", job_id)
        chunks = self.query("SELECT stage, status, count(*) FROM evaluation_chunk WHERE job_id = %s "
                            "GROUP BY 1, 2 ORDER BY 1, 2", job_id)
        return {"texts": texts, "scores": scores, "metrics": metrics, "chunks": chunks}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    model_dir = build_tiny_causal_lm(folder / "models" / "tiny-llama", arch="llama")
    deployment = Deployment(folder, model_dir)
    try:
        deployment.manage("migrate", "--noinput")
        data = folder / "prompts.jsonl"
        words = ["weather", "neighbour", "match", "door", "idiot", "garden", "train", "book", "fool", "night",
                 "river", "street"]
        data.write_text("".join(
            f'{{"id": "{lang}-{i}", "language": "{lang}", "group": "g{i}", "text": "About the {words[i]} ({lang} {i})",'
            f' "toxic": {"true" if i % 2 == 0 else "false"}}}\n'
            for lang in LANGUAGES for i in range(PER_LANGUAGE)))
        deployment.manage("import_dataset", "jsonl", str(data), "--dataset-slug", "faults",
                          "--map", "text=text", "--map", "id=id", "--map", "language=language", "--map",
                          "group=group", "--map", "toxic=toxic")
        yield deployment
    finally:
        deployment.close()


@pytest.fixture(scope="module")
def reference(deployment):
    """The uninterrupted run: the same job run in one process (`manage.py evaluate`, inline)."""
    out = deployment.manage("evaluate", "--name", "reference", "--model", str(deployment.model_dir),
                            *deployment.job_args(), "--no-progress")
    job_id = int(re.search(r"Job (\d+):", out).group(1))
    results = deployment.results(job_id)
    total = len(LANGUAGES) * PER_LANGUAGE
    assert len(results["texts"]) == total * 2 and len(results["scores"]) >= total * 2
    assert results["metrics"]
    return results


def check_like_the_reference(deployment: Deployment, job_id: int, reference: dict) -> dict:
    job = deployment.job(job_id)
    assert job["status"] == "done", f"{job['error']}\n{deployment.log()}"
    assert job["generated_prompts"] == job["scored_prompts"] == job["total_prompts"] == len(LANGUAGES) * PER_LANGUAGE
    results = deployment.results(job_id)
    assert results["texts"] == reference["texts"]  # every text, nothing missing, nothing doubled
    assert results["scores"] == reference["scores"]
    assert results["metrics"] == reference["metrics"]
    assert results["chunks"] == reference["chunks"]
    check_routing(deployment)
    return job


def check_routing(deployment: Deployment) -> None:
    """Workers split by queue as deployed: a task on the wrong queue fails the scenario."""
    for role, allowed in (("generate", {"evaluation.generate_chunk"}),
                          ("score", {"evaluation.score_chunk", "evaluation.finalize_job",
                                     "evaluation.resume_stale_jobs"})):
        for worker in deployment.workers[role]:
            received = set(TASK_RECEIVED.findall(worker.log_path.read_text(errors="replace")))
            assert received <= allowed, f"{role} worker ran {received - allowed}"


def events(job: dict) -> list[str]:
    return [entry["event"] for entry in job["history"] or []]


# --- the scenarios ----------------------------------------------------------------------------


def test_redis_restarted_mid_job_loses_every_queued_message_and_the_job_still_ends_exact(deployment, reference):
    deployment.ensure_workers()
    job_id = deployment.queue_job("redis restart")
    deployment.wait(lambda: deployment.job(job_id)["generated_prompts"] >= 4, timeout=JOB_TIMEOUT,
                    what="generation to be under way")
    deployment.redis.restart(down_for=1.0)
    job = deployment.wait_until_done(job_id)
    check_like_the_reference(deployment, job_id, reference)
    assert "recovered" in events(job)  # the sweeper sent again what the restart lost


def test_postgres_restarted_mid_job_is_waited_out(deployment, reference):
    deployment.ensure_workers()
    job_id = deployment.queue_job("postgres restart")
    deployment.wait(lambda: deployment.job(job_id)["generated_prompts"] >= 4, timeout=JOB_TIMEOUT,
                    what="generation to be under way")
    deployment.pg.restart()  # every connection cut; back within a fraction of a second
    deployment.wait_until_done(job_id)
    check_like_the_reference(deployment, job_id, reference)


def test_postgres_down_for_seconds_mid_job_is_waited_out(deployment, reference):
    deployment.ensure_workers()
    job_id = deployment.queue_job("postgres outage")
    deployment.wait(lambda: deployment.job(job_id)["generated_prompts"] >= 4, timeout=JOB_TIMEOUT,
                    what="generation to be under way")
    deployment.pg.stop(keep=True)
    time.sleep(4)  # longer than a claim's lease: claims run out meanwhile
    deployment.pg.start_again()
    deployment.wait_until_done(job_id)
    check_like_the_reference(deployment, job_id, reference)


@pytest.mark.parametrize("role,stage", [("generate", "generate"), ("score", "score")])
def test_a_worker_killed_mid_chunk_is_replaced_and_the_job_ends_exact(deployment, reference, role, stage):
    deployment.ensure_workers()
    job_id = deployment.queue_job(f"killed during {stage}")
    deployment.wait(lambda: deployment.running_chunk(job_id, stage) or deployment.stage_over(job_id, stage),
                    timeout=JOB_TIMEOUT, what=f"a running {stage} chunk", interval=0.002)
    victim = deployment.running(role)[0]
    assert not deployment.stage_over(job_id, stage), f"every {stage} chunk ended before the test caught one running"
    victim.kill()
    assert deployment.job(job_id)["status"] in ("queued", "running")
    deployment.start_worker(role)
    job = deployment.wait_until_done(job_id)
    check_like_the_reference(deployment, job_id, reference)
    assert "recovered" in events(job)


def test_a_worker_killed_during_finalize_is_replaced_and_the_job_ends_exact(deployment, reference):
    deployment.ensure_workers()
    job_id = deployment.queue_job("killed during finalize")
    deployment.wait(lambda: deployment.job(job_id)["status"] in ("finalizing", "done"), timeout=JOB_TIMEOUT,
                    what="finalize to start", interval=0.005)
    deployment.running("score")[0].kill()
    assert deployment.job(job_id)["status"] == "finalizing", "finalize ended before the kill landed"
    deployment.start_worker("score")
    job = deployment.wait_until_done(job_id)
    check_like_the_reference(deployment, job_id, reference)
    assert "recovered" in events(job)  # finalize was sent again


def test_a_frozen_worker_loses_its_claim_when_its_lease_runs_out(deployment, reference):
    """SIGSTOP: the process still exists, so no check on this host sees it dead, as with a
    worker on a machine that went dark. Its lease is no longer renewed; the sweeper frees the
    chunk within lease + sweep seconds and another worker finishes it."""
    deployment.ensure_workers()
    job_id = deployment.queue_job("frozen worker")
    deployment.wait(lambda: deployment.running_chunk(job_id, "generate") or deployment.stage_over(job_id, "generate"),
                    timeout=JOB_TIMEOUT, what="a running generate chunk", interval=0.002)
    frozen = deployment.running("generate")[0]
    os.killpg(frozen.process.pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:
        [(chunk_id, holder)] = deployment.query(
            "SELECT id, worker FROM evaluation_chunk WHERE job_id = %s AND stage = 'generate' AND status = 'running'",
            job_id)
        deployment.start_worker("generate")
        deployment.wait(lambda: not deployment.query(
            "SELECT 1 FROM evaluation_chunk WHERE id = %s AND status = 'running' AND worker = %s", chunk_id, holder),
            timeout=30, what="the frozen worker's claim to be freed", interval=0.1)
        freed_after = time.monotonic() - frozen_at
        job = deployment.wait_until_done(job_id)
    finally:
        os.killpg(frozen.process.pid, signal.SIGCONT)
        frozen.kill()
    lease = float(FAULT_CLOCK["TOXPLATFORM_CLAIM_LEASE_SECONDS"])
    sweep = float(FAULT_CLOCK["TOXPLATFORM_SWEEP_SECONDS"])
    assert freed_after < lease + sweep + 5, f"freed after {freed_after:.1f} s"
    check_like_the_reference(deployment, job_id, reference)
    assert "recovered" in events(job)


def test_two_workers_per_queue_on_one_job_end_exact(deployment, reference):
    deployment.ensure_workers()
    for role in ("generate", "score"):
        if len(deployment.running(role)) < 2:
            deployment.start_worker(role)
    job_id = deployment.queue_job("two workers")
    deployment.wait_until_done(job_id)
    check_like_the_reference(deployment, job_id, reference)
    busy = [worker for worker in deployment.running("generate")
            if "evaluation.generate_chunk" in TASK_RECEIVED.findall(worker.log())]
    assert len(busy) == 2, "both generate workers should have taken chunks of the job"
