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
the demo) call the same functions; only the dispatch of the next step differs.

One module per step, in the order a job meets them:

    jobs.py      create_job: every parameter checked, then the job written and planned
    planning.py  which prompts (seeded, the same transcreation groups in every language), chunks
    dispatch.py  queueing what follows a finished chunk (the only module that sends tasks)
    claims.py    claiming a chunk for this process; done, handed back or failed
    generate.py  the generate stage
    score.py     the score stage
    finalize.py  metrics -> JobMetric rows; the job ends DONE
    control.py   cancel, resume, the periodic resume of stale claims, the inline run

Callers use the names below (`from evaluation import services; services.create_job(...)`).
"""
from toxplatform.errors import ApplicationError, TransientError  # noqa: F401  (what these raise)

from .claims import ClaimLost, claim_chunk, fail_job, max_chunk_attempts  # noqa: F401
from .control import (  # noqa: F401
    ProgressCallback,
    cancel_job,
    resume_job,
    resume_stale_jobs,
    run_job_inline,
)
from .finalize import finalize_job, job_metric_rows  # noqa: F401
from .generate import (  # noqa: F401
    generate_chunk,
    generation_params,
    record_method_notes,
    run_generate_chunk,
    storable_json,
    storable_text,
)
from .jobs import THRESHOLD_RULES, code_version, create_job  # noqa: F401
from .planning import enqueue_job, plan_job, select_prompts  # noqa: F401
from .score import run_score_chunk, score_chunk  # noqa: F401
