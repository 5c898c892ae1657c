"""Queue names and task names, in one import-light module: workers, routes, docker-compose
and every module that sends a task use these, so nothing has to import a tasks module to
send one (services send tasks by name; tasks call services: no import cycle).
"""

GENERATE = "generate"  # long work: text generation (GPU workers when present)
SCORE = "score"  # short work: scoring, finalize
DEFAULT = "celery"

ALL = (GENERATE, SCORE, DEFAULT)

# Task names (the names in messages: renaming one strands messages already queued).
GENERATE_CHUNK = "evaluation.generate_chunk"
SCORE_CHUNK = "evaluation.score_chunk"
FINALIZE_JOB = "evaluation.finalize_job"
RESUME_STALE_JOBS = "evaluation.resume_stale_jobs"
# Scorer trust: a training run of the trained scorer, a scorer evaluation against gold labels.
TRAIN_SCORER = "evaluation.train_scorer"
EVALUATE_SCORER = "evaluation.evaluate_scorer"

# Where each task goes when a sender does not say.
ROUTES = {
    GENERATE_CHUNK: GENERATE,
    SCORE_CHUNK: SCORE,
    FINALIZE_JOB: SCORE,
    RESUME_STALE_JOBS: DEFAULT,
    TRAIN_SCORER: DEFAULT,
    EVALUATE_SCORER: DEFAULT,
}
