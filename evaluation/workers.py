"""Which Celery workers are alive, and what a waiting job needs from them.

Each worker process writes a `WorkerHeartbeat` row when it is ready, then every
WORKER_HEARTBEAT_SECONDS from a daemon thread (independent of beat and of the broker, so it
works on the embedded filesystem broker too), and marks it stopped on a warm shutdown. A
worker not seen for `MISSED_BEATS` beats counts as gone (killed, machine down).

Pages and `/healthz?workers=1` read `queue_report()` (one query over a small table).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from evaluation.models import EvaluationJob, WorkerHeartbeat
from toxplatform import queues

logger = logging.getLogger(__name__)

MISSED_BEATS = 3
# Rows of workers gone this long are deleted when a worker starts (the table stays small).
FORGET_AFTER = timedelta(days=7)


def heartbeat_seconds() -> float:
    return settings.WORKER_HEARTBEAT_SECONDS


def alive_since(now: datetime | None = None) -> datetime:
    """A worker seen after this moment counts as alive."""
    return (now or timezone.now()) - timedelta(seconds=MISSED_BEATS * heartbeat_seconds())


# --- writing (the worker side) -----------------------------------------------------------------


def record_beat(*, name: str, queue_names, pid: int | None = None, host: str | None = None,
                now: datetime | None = None) -> WorkerHeartbeat:
    """The worker `name` (process `pid`) is alive and consumes `queue_names`."""
    now = now or timezone.now()
    pid = os.getpid() if pid is None else pid
    fields = {"host": host or socket.gethostname(), "queues": sorted(queue_names), "last_seen": now,
              "stopped_at": None}
    # One UPDATE per beat (no read-then-write transaction to contend with the worker's own).
    if WorkerHeartbeat.objects.filter(name=name, pid=pid).update(**fields):
        return WorkerHeartbeat.objects.get(name=name, pid=pid)
    WorkerHeartbeat.objects.filter(last_seen__lt=now - FORGET_AFTER).delete()
    row, _ = WorkerHeartbeat.objects.get_or_create(name=name, pid=pid, defaults={**fields, "started_at": now})
    return row


def record_stop(*, name: str, pid: int | None = None) -> None:
    now = timezone.now()
    WorkerHeartbeat.objects.filter(name=name, pid=os.getpid() if pid is None else pid).update(
        stopped_at=now, last_seen=now)


class HeartbeatThread(threading.Thread):
    """Beats every WORKER_HEARTBEAT_SECONDS until stopped; a failed beat (database briefly
    down, SQLite locked) is logged and the next one tried."""

    def __init__(self, name: str, queue_names):
        super().__init__(name="worker-heartbeat", daemon=True)
        self.worker_name = name
        self.queue_names = list(queue_names)
        self.stopping = threading.Event()

    def beat(self) -> None:
        try:
            record_beat(name=self.worker_name, queue_names=self.queue_names)
        except Exception:  # noqa: BLE001 - a heartbeat must never take the worker down
            logger.exception("worker heartbeat failed")
        finally:
            close_old_connections()
            connection.close()  # this thread's own connection: no lock held between beats

    def run(self) -> None:
        while not self.stopping.wait(heartbeat_seconds()):
            self.beat()

    def stop(self) -> None:
        self.stopping.set()


_thread: HeartbeatThread | None = None


def on_worker_ready(consumer) -> None:
    """Celery's worker_ready: first beat now (so a page sees the worker at once), then the thread."""
    global _thread
    names = list(consumer.app.amqp.queues.consume_from)
    _thread = HeartbeatThread(consumer.hostname, names)
    _thread.beat()
    _thread.start()
    logger.info("worker heartbeat every %s s for %s on %s", heartbeat_seconds(), consumer.hostname, names)


def on_worker_shutdown(worker) -> None:
    """Celery's worker_shutdown (warm shutdown): say so, so pages need not wait for the beats to stop."""
    if _thread is None:
        return
    _thread.stop()
    try:
        record_stop(name=_thread.worker_name)
    except Exception:  # noqa: BLE001
        logger.exception("could not record the worker's stop")
    finally:
        connection.close()


# --- reading (pages, /healthz?workers=1) ----------------------------------------------------------


@dataclass
class QueueWorkers:
    queue: str
    alive: list[WorkerHeartbeat] = field(default_factory=list)
    last_seen: datetime | None = None  # the latest any worker of this queue was seen, alive or not

    @property
    def has_worker(self) -> bool:
        return bool(self.alive)


def queue_report(now: datetime | None = None) -> dict[str, QueueWorkers]:
    """Every queue -> its live workers and when one was last seen."""
    threshold = alive_since(now)
    report = {name: QueueWorkers(name) for name in queues.ALL}
    for row in WorkerHeartbeat.objects.order_by("-last_seen"):
        alive = row.stopped_at is None and row.last_seen >= threshold
        for name in row.queues:
            entry = report.setdefault(name, QueueWorkers(name))
            if alive:
                entry.alive.append(row)
            if entry.last_seen is None or row.last_seen > entry.last_seen:
                entry.last_seen = row.last_seen
    return report


def queues_needed(job: EvaluationJob) -> list[str]:
    """The queues an unfinished job waits on: `generate` while prompts are left to generate,
    `score` until it is finalized (scoring follows each generated chunk)."""
    if job.status not in EvaluationJob.UNFINISHED:
        return []
    needed = [queues.GENERATE] if job.generated_prompts < job.total_prompts else []
    return needed + [queues.SCORE]


def worker_command(queue_names=queues.ALL) -> str:
    """The command that starts a worker for these queues (the one scripts/serve.sh runs)."""
    return f"celery -A toxplatform worker -Q {','.join(queue_names)} --loglevel=INFO"


@dataclass(frozen=True)
class MissingWorkers:
    """What the job page and job list say when nothing consumes a queue a job waits on."""

    queues: list[QueueWorkers]
    waiting_since: datetime
    command: str

    @property
    def queue_names(self) -> list[str]:
        return [entry.queue for entry in self.queues]

    @property
    def never_seen(self) -> bool:
        return all(entry.last_seen is None for entry in self.queues)

    @property
    def last_seen(self) -> datetime | None:
        seen = [entry.last_seen for entry in self.queues if entry.last_seen]
        return max(seen) if seen else None


def missing_workers(job: EvaluationJob, report: dict[str, QueueWorkers]) -> MissingWorkers | None:
    """None when every queue the job waits on has a live worker (or it waits on none)."""
    missing = [report.get(name) or QueueWorkers(name) for name in queues_needed(job)]
    missing = [entry for entry in missing if not entry.has_worker]
    if not missing:
        return None
    return MissingWorkers(queues=missing, waiting_since=job.created_at,
                          command=worker_command([entry.queue for entry in missing]))


def health_report(now: datetime | None = None) -> dict:
    """`/healthz?workers=1`: per queue, how many workers are alive and when one was last seen.
    The probe needs no login, so it names no host or process (the admin lists those)."""
    report = queue_report(now)
    return {
        "heartbeat_seconds": heartbeat_seconds(),
        "queues": {
            name: {"workers": len(entry.alive),
                   "last_seen": entry.last_seen.isoformat() if entry.last_seen else None}
            for name, entry in report.items()
        },
    }
