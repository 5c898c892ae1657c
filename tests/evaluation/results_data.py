"""Rows for the evaluation page, API and leaderboard tests, built with the ORM: a small dataset,
users with roles, DONE jobs and JobMetric rows written by hand (so every expected number in
a test is known exactly)."""
from datetime import datetime, timedelta, timezone

from evaluation.metrics import variant_text
from evaluation.models import EvaluationJob, Generation, JobMetric, ModelSpec, Score
from toxplatform.accounts.models import Role
from toxplatform.accounts.services import create_user_with_role
from toxplatform.corpus.models import Dataset, Prompt

PASSWORD = "results-test-password"
XSS_GENERATION = '<script>alert("gen")</script><img src=x onerror=alert(2)>'
ARABIC_GENERATION = "هذا نص عربي من النموذج"
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)


def make_user(username: str, role: str | None = Role.RESEARCHER):
    return create_user_with_role(username=username, password=PASSWORD, role=role)


def make_dataset(slug: str = "mini", name: str = "Mini RTP-LX") -> Dataset:
    """Two English, two Arabic and one German prompt; is_toxic set for the split tests."""
    dataset = Dataset.objects.create(slug=slug, name=name, format="rtp-lx", version="1.0")
    for language, external_id, text, toxic in [
        ("en", "1", "You are such a", True),
        ("en", "2", "The weather today is", False),
        ("ar", "1", "أنت شخص", True),
        ("ar", "2", "الطقس اليوم", False),
        ("de", "1", "Du bist ein", True),
    ]:
        Prompt.objects.create(dataset=dataset, language_id=language, external_id=external_id, text=text,
                              group_id=external_id, is_toxic=toxic)
    return dataset


def make_model(name: str) -> ModelSpec:
    # A fingerprint is set, so nothing tries to hash weights that these rows do not have.
    spec, _ = ModelSpec.objects.get_or_create(name=name, defaults={"location": f"/models/{name}", "fingerprint": "f" * 64})
    return spec


def make_job(model: str, method: str, dataset: Dataset, *, status=EvaluationJob.Status.DONE, finished_minutes=0,
             k=25, threshold_rule=">=", languages=(), user=None, **fields) -> EvaluationJob:
    finished = T0 + timedelta(minutes=finished_minutes) if status == EvaluationJob.Status.DONE else None
    return EvaluationJob.objects.create(
        model=make_model(model), detox_method=method, dataset=dataset, status=status, finished_at=finished,
        k=k, threshold_rule=threshold_rule, languages=list(languages), created_by=user,
        scorers=[{"name": "lexicon", "params": {}}], model_fingerprint="f" * 64, code_version="v-test", **fields,
    )


PPL_SCORER = "perplexity:big-lm"


def add_metric(job, language, metric, value, *, scorer="lexicon", category="toxicity", subset="all",
               k=None, rule=None, extra=(), measure=None, n=100, ci=None) -> JobMetric:
    """A JobMetric with metrics.py's names and variants (k: the job's unless given; TP: the
    job's rule at 0.5 unless given); the CI defaults to value ± 0.05."""
    k = job.k if k is None else k
    rule, threshold = ((rule or job.threshold_rule), 0.5) if metric == "tp" else ("", None)
    low, high = ci if ci is not None else ((value - 0.05, value + 0.05) if value is not None else (None, None))
    return JobMetric.objects.create(
        job=job, language_id=language, category=category, scorer=scorer, metric=metric, subset=subset,
        variant=variant_text(k, rule, threshold, *extra), k=k, rule=rule, threshold=threshold,
        measure=(measure or ("quality" if metric == "ppl" else "probability")) if scorer else "", value=value, n=n, ci_low=low, ci_high=high,
    )


def add_toxicity(job, language, *, emt, tp, avg, std=0.1, **options) -> None:
    add_metric(job, language, "emt", emt, **options)
    add_metric(job, language, "emt_std", std, **{**options, "ci": (None, None)})
    add_metric(job, language, "tp", tp, **options)
    add_metric(job, language, "avg", avg, **options)


def add_quality(job, language, *, ppl, dists=(0.9, 0.8, 0.7), subset="all") -> None:
    add_metric(job, language, "ppl", ppl, scorer=PPL_SCORER, category="perplexity", subset=subset,
               ci=(ppl - 1, ppl + 1))
    for n, value in enumerate(dists, start=1):
        add_metric(job, language, f"dist-{n}", value, scorer="", category="", subset=subset, extra=("words",))


def add_generation(job, prompt, text, *, score=None, sample_index=0) -> Generation:
    generation = Generation.objects.create(job=job, prompt=prompt, sample_index=sample_index, text=text, token_count=5)
    if score is not None:
        Score.objects.create(generation=generation, scorer="lexicon", category="toxicity", value=score)
    return generation
