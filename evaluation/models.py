"""Evaluation data: model specs, jobs, their chunks, generations, scores and aggregate metrics.

Job state lives here, not in the broker: unique constraints on Generation and Score make
every task idempotent, and chunk rows make a job resumable after a worker dies.
"""
from django.conf import settings
from django.db import models

from toxplatform.corpus.models import Dataset, Language, Prompt


class ModelSpec(models.Model):
    name = models.CharField(max_length=200, unique=True)
    # A registered generator backend (evaluation/generators/): "hf", "openai", ...
    backend = models.CharField(max_length=20, default="hf")
    # hf: a model directory, or a directory holding `gguf_file`; openai: the base URL.
    location = models.CharField(max_length=1000)
    gguf_file = models.CharField(max_length=300, blank=True)
    # openai: the model name the endpoint serves.
    remote_model = models.CharField(max_length=300, blank=True)
    dtype = models.CharField(max_length=20, default="auto", help_text="auto, float32, bfloat16, float16")
    device = models.CharField(max_length=20, default="auto", help_text="auto, cpu, cuda, cuda:1, ...")
    use_chat_template = models.BooleanField(default=False)
    fingerprint = models.CharField(max_length=64, blank=True, help_text="hash of weights or endpoint+model")
    params = models.JSONField(default=dict, blank=True, help_text="backend options (timeouts, concurrency...)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class EvaluationJob(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        QUEUED = "queued"
        RUNNING = "running"
        FINALIZING = "finalizing"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class PromptSplit(models.TextChoices):
        ALL = "all"
        TOXIC = "toxic"
        NONTOXIC = "nontoxic"

    TERMINAL = (Status.DONE, Status.FAILED, Status.CANCELLED)
    UNFINISHED = (Status.PENDING, Status.QUEUED, Status.RUNNING, Status.FINALIZING)
    # Chunks of an ACTIVE job may be claimed and what follows them queued (not while FINALIZING).
    ACTIVE = (Status.QUEUED, Status.RUNNING)

    name = models.CharField(max_length=200, blank=True)
    model = models.ForeignKey(ModelSpec, on_delete=models.PROTECT, related_name="jobs")
    model_fingerprint = models.CharField(max_length=64, blank=True)
    detox_method = models.CharField(max_length=50, default="none")
    detox_params = models.JSONField(default=dict, blank=True)
    # How the method ran: its prepared artifact, a derived model's fingerprint, languages
    # that fell back (DetoxMethod.notes, merged from every chunk).
    detox_notes = models.JSONField(default=dict, blank=True)

    # Prompt selection
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="jobs")
    languages = models.JSONField(default=list, blank=True, help_text="language codes; empty = all")
    categories = models.JSONField(default=list, blank=True, help_text="harm category slugs; empty = all")
    prompt_split = models.CharField(max_length=10, choices=PromptSplit.choices, default=PromptSplit.ALL)
    prompts_per_language = models.PositiveIntegerField(null=True, blank=True, help_text="empty = all")
    seed = models.IntegerField(default=0)

    # Generation
    k = models.PositiveIntegerField(default=25, help_text="samples per prompt")
    max_new_tokens = models.PositiveIntegerField(default=20)
    top_p = models.FloatField(default=0.9)
    temperature = models.FloatField(default=1.0)
    batch_size = models.PositiveIntegerField(default=16)
    chunk_size = models.PositiveIntegerField(default=32, help_text="prompts per chunk task")

    # [{"name": "perplexity", "params": {"path": ...}, "key": "perplexity:gemma-3-270m"}, ...]
    scorers = models.JSONField(default=list)
    # What each scorer measures, as it declared when the job was created (scorers/measures.py):
    # {scorer key: {category: {"kind": "probability" | "rating" | "quality", ...}}}.
    scorer_measures = models.JSONField(default=dict, blank=True)
    # Whether each scorer covers each of the job's languages, as it said at creation
    # (Scorer.covers): {scorer key: {language: true | false | null (unknown)}}.
    scorer_coverage = models.JSONField(default=dict, blank=True)
    # Metric variants: toxic threshold and rule (">=" as HELM/lm-eval, ">" as DExperts).
    toxic_threshold = models.FloatField(default=0.5)
    threshold_rule = models.CharField(max_length=2, default=">=")

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    total_prompts = models.PositiveIntegerField(default=0)
    generated_prompts = models.PositiveIntegerField(default=0)
    scored_prompts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="evaluation_jobs"
    )
    code_version = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True, help_text="the first start (a resume keeps it)")
    finished_at = models.DateTimeField(null=True, blank=True)
    # When finalize was last sent: the sweeper sends it again if the job is still not DONE
    # some time later (its message lost, or its worker died while computing the metrics).
    finalize_sent_at = models.DateTimeField(null=True, blank=True)
    # What happened to the job besides its normal course, oldest first: resumes (with the
    # status and error they cleared) and recoveries from dead workers or lost messages.
    # [{"at": iso time, "event": "resumed" | "recovered", ...}] (services/control.py).
    history = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or f"job {self.pk}"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def scorer_keys(self) -> list[str]:
        """What this job's scores and metrics are stored under, in the job's order."""
        return [scorer_key(spec) for spec in self.scorers]


def scorer_key(spec: dict) -> str:
    """A job's scorer spec -> the Score/JobMetric `scorer` value (jobs queued before keys
    existed stored results under the bare name)."""
    return spec.get("key") or spec["name"]


class JobPrompt(models.Model):
    """The prompts a job selected (seeded), each in one chunk."""

    job = models.ForeignKey(EvaluationJob, on_delete=models.CASCADE, related_name="job_prompts")
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="+")
    chunk_index = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "prompt"], name="unique_job_prompt")]
        indexes = [models.Index(fields=["job", "chunk_index"])]


class Chunk(models.Model):
    """A unit of work claimed by one task at a time with a conditional UPDATE."""

    class Stage(models.TextChoices):
        GENERATE = "generate"
        SCORE = "score"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    job = models.ForeignKey(EvaluationJob, on_delete=models.CASCADE, related_name="chunks")
    stage = models.CharField(max_length=10, choices=Stage.choices)
    index = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="claims so far, all resumes included")
    # Attempts made before the last resume: the attempt cap counts only those since.
    attempts_before_resume = models.PositiveSmallIntegerField(default=0)
    # When this chunk's message was last sent, and how often: the sweeper re-sends a ready
    # QUEUED chunk whose message is overdue (lost with a broker restart, or never sent).
    sent_at = models.DateTimeField(null=True, blank=True)
    sends = models.PositiveIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True, help_text="a RUNNING claim past this may be taken over")
    worker = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    @property
    def attempts_since_resume(self) -> int:
        return self.attempts - self.attempts_before_resume

    class Meta:
        ordering = ["job_id", "stage", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "stage", "index"], name="unique_chunk")]


class Generation(models.Model):
    job = models.ForeignKey(EvaluationJob, on_delete=models.CASCADE, related_name="generations")
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="generations")
    sample_index = models.PositiveIntegerField()
    text = models.TextField()
    token_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "prompt", "sample_index"], name="unique_generation_sample")
        ]


class Score(models.Model):
    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="scores")
    scorer = models.CharField(max_length=100)
    # A harm category slug, or a non-harm measure such as "perplexity".
    category = models.CharField(max_length=50)
    # None when the scorer could not give a value (e.g. a judge's unparseable answer).
    value = models.FloatField(null=True)
    raw = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["generation", "scorer", "category"], name="unique_score")
        ]
        indexes = [models.Index(fields=["scorer", "category"])]


class JobMetric(models.Model):
    """Aggregates per (job, language, category, scorer, metric, subset, variant): leaderboards
    read these. Every variant the field uses (k = 25/10/5/1 subsamples, >= or > threshold) is
    stored, computed from the same raw per-sample scores."""

    job = models.ForeignKey(EvaluationJob, on_delete=models.CASCADE, related_name="metrics")
    language = models.ForeignKey(Language, on_delete=models.PROTECT, related_name="+")
    category = models.CharField(max_length=50, blank=True)
    scorer = models.CharField(max_length=100, blank=True)
    metric = models.CharField(max_length=30)
    subset = models.CharField(max_length=10, default="all", help_text="all, toxic or nontoxic prompts")
    # For reading; the parts that select a row are columns of their own.
    variant = models.CharField(max_length=50, blank=True, help_text="e.g. k=25, >=0.5")
    k = models.PositiveIntegerField(null=True, blank=True, help_text="samples per prompt the value rests on")
    rule = models.CharField(max_length=2, blank=True, help_text="TP's threshold rule: >= or >")
    threshold = models.FloatField(null=True, blank=True, help_text="TP's toxic threshold")
    # The kind of measure the scorer declared (scorers/measures.py); empty for Dist-n.
    measure = models.CharField(max_length=12, blank=True)
    value = models.FloatField(null=True)
    n = models.PositiveIntegerField(default=0)
    ci_low = models.FloatField(null=True)
    ci_high = models.FloatField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["job", "language", "category", "scorer", "metric", "subset", "variant"],
                name="unique_job_metric",
            )
        ]


class DetoxArtifact(models.Model):
    """Prepared once per (method, model fingerprint, data fingerprint) and reused."""

    method = models.CharField(max_length=50)
    model_fingerprint = models.CharField(max_length=64)
    data_fingerprint = models.CharField(max_length=64)
    params_fingerprint = models.CharField(max_length=64, blank=True)
    path = models.CharField(max_length=1000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["method", "model_fingerprint", "data_fingerprint", "params_fingerprint"],
                name="unique_detox_artifact",
            )
        ]


# Scorer trust (training runs, scorer evaluations, imported scores): their own module.
from evaluation.scorer_trust.models import (  # noqa: E402,F401
    ImportedScore,
    ImportedScoreSet,
    ScorerEvaluation,
    ScorerEvaluationResult,
    ScorerEvaluationScore,
    TrainingRun,
)

# Judge prompts live in their own module (versioned data for the llm_judge scorer).
from evaluation.judge_models import JudgePrompt  # noqa: E402,F401


class WorkerHeartbeat(models.Model):
    """A Celery worker's sign of life (evaluation/workers.py writes it on start, every
    WORKER_HEARTBEAT_SECONDS, and on a warm shutdown): pages say when no worker consumes the
    queue a job waits on."""

    name = models.CharField(max_length=200, help_text="the worker's node name, e.g. celery@host")
    host = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list)
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen"]
        constraints = [models.UniqueConstraint(fields=["name", "pid"], name="unique_worker_process")]

    def __str__(self) -> str:
        return f"{self.name} ({self.pid})"
