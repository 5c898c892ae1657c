"""Queue names, in one import-light module (workers, routes and docker-compose use them)."""

GENERATE = "generate"  # long work: text generation (GPU workers when present)
SCORE = "score"  # short work: scoring, finalize
DEFAULT = "celery"

ALL = (GENERATE, SCORE, DEFAULT)
