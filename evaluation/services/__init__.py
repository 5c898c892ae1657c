"""Evaluation jobs: create (validated), plan, enqueue, run chunks, finalize, cancel, resume.

Job state lives in the database, never in the broker. Every step can run twice or die
half-way and the job still ends with exactly k generations per prompt and one score per
(generation, scorer, category):

- a chunk is *claimed* with a conditional UPDATE (only one claim wins); a claim whose
  deadline passed, or whose process is gone from this host, may be taken over;
- generations and scores are bulk-inserted with ignore_conflicts against their unique
  constraints, and a chunk first skips what is already there;
- the last score chunk to finish is found by counting chunk rows (no chords), and
  finalize runs under a row lock on the job, so running it twice is harmless.

The Celery tasks (tasks.py) and the inline runner (`run_job_inline`, used by the CLI and
the demo) run chunks through the same skeleton (stages.run_chunk); only what happens after
a chunk differs (a worker queues the next step, the inline runner runs it).

One module per step, in the order a job meets them:

    jobs.py      create_job: every parameter checked (job_parameters.py), then written and planned
    planning.py  which prompts (seeded, the same transcreation groups in every language), chunks
    state.py     every status change of a job or a chunk, with the allowed transitions
    dispatch.py  sending the next step to the broker, by task name (the only module that does)
    claims.py    claiming a chunk for this process; running its work with failures recorded
    stages.py    the claim -> work -> complete skeleton every stage shares
    generate.py  the generate stage
    score.py     the score stage
    finalize.py  metrics -> JobMetric rows; the job ends DONE
    control.py   cancel, resume, the periodic resume of stale claims, the inline run

Callers use the names below (`from evaluation import services; services.create_job(...)`).
"""
from . import generate, score  # noqa: F401  (registers the stages)
from .claims import claim_chunk  # noqa: F401
from .control import cancel_job, resume_job, resume_stale_jobs, run_job_inline  # noqa: F401
from .finalize import finalize_job  # noqa: F401
from .generate import record_method_notes  # noqa: F401
from .jobs import create_job  # noqa: F401
from .planning import enqueue_job  # noqa: F401
from .stages import process_chunk, run_chunk  # noqa: F401
