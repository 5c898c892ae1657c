"""One skeleton for every chunk stage: ready? -> claim -> work -> complete.

A stage (generate.py, score.py) says only what differs: whether a chunk may start, the
work on a claimed chunk, and the job counters bumped when it completes. Who runs the
skeleton decides what follows: a worker queues the next step (`process_chunk`), the inline
runner just runs the next chunk itself.
"""
from __future__ import annotations

from collections.abc import Callable

from evaluation.models import Chunk
from evaluation.services import state
from evaluation.services.claims import claim_chunk, run_claimed
from evaluation.services.dispatch import follow_up

OnBatch = Callable[[str, int], None]  # (stage, prompts or generations finished in this batch)


class Stage:
    name: str = ""  # a Chunk.Stage value

    def ready(self, chunk_id: int) -> bool:
        """May this chunk start now? (Scoring waits for its generation.)"""
        return True

    def work(self, chunk: Chunk, on_batch: OnBatch | None) -> None:
        raise NotImplementedError

    def counters(self, chunk: Chunk) -> dict:
        """Job counters to bump in the transaction that completes the chunk."""
        return {}


STAGES: dict[str, Stage] = {}


def register(stage: type[Stage]) -> type[Stage]:
    STAGES[stage.name] = stage()
    return stage


def run_chunk(chunk_id: int, *, on_batch: OnBatch | None = None) -> bool:
    """Claim and run one chunk of any stage. True when the chunk is DONE, by this call or an
    earlier one; False when it is not ready, held elsewhere, failed or its job stopped."""
    row = Chunk.objects.filter(pk=chunk_id).values("stage").first()
    if row is None or not STAGES[row["stage"]].ready(chunk_id):
        return False
    stage = STAGES[row["stage"]]
    chunk = claim_chunk(chunk_id)
    if chunk is None:
        return Chunk.objects.filter(pk=chunk_id, status=Chunk.Status.DONE).exists()
    return run_claimed(chunk, lambda: stage.work(chunk, on_batch),
                       lambda: state.complete_chunk(chunk, **stage.counters(chunk)))


def process_chunk(chunk_id: int) -> None:
    """A worker's whole handling of a chunk message: run it, then queue what follows."""
    if run_chunk(chunk_id):
        follow_up(chunk_id)
