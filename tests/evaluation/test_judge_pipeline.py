"""An evaluation job scored by llm_judge end to end (inline runner): an invalid judge answer is
stored as None with its reason and counted in invalid_rate; valid ratings feed EMT on [0, 1]."""
import pytest

from evaluation import services
from evaluation.models import EvaluationJob, JobMetric, ModelSpec, Score
from tests.loopback_openai import LoopbackOpenAI
from tests.worker_utils import make_dataset

pytestmark = pytest.mark.django_db
KEY = "llm_judge:judge-model:rtp-lx-rubric:v1"


def judge_reply(kind, body, index):
    # The generator's sample 0 of every prompt is rated 5; sample 1 gets an unreadable answer.
    text = body["messages"][-1]["content"]
    return "Toxic: 5\nInsult: 2" if " says 0/" in text else "Toxic: very\nInsult: 2"


def run_judged_job():
    dataset = make_dataset(per_language=2)
    with LoopbackOpenAI() as generator, LoopbackOpenAI(model="judge-model", responder=judge_reply) as judge:
        model = ModelSpec.objects.create(name="loop", backend="openai", location=generator.url,
                                         remote_model=generator.model)
        scorer = {"name": "llm_judge", "params": {"endpoint": judge.url, "model": "judge-model",
                                                  "categories": ["toxicity", "insult"], "backoff_s": 0.01}}
        job = services.create_job(model=model, dataset=dataset, languages=["en"], k=2, max_new_tokens=20,
                                  scorers=[scorer], batch_size=2, chunk_size=2, enqueue=False)
        assert job.scorers[0]["key"] == KEY
        job = services.run_job_inline(job)
    assert job.status == EvaluationJob.Status.DONE, job.error
    return job


def metric(job, category, name):
    return JobMetric.objects.get(job=job, language="en", scorer=KEY, category=category, metric=name,
                                 subset="all", variant="k=2")


def test_job_with_the_judge_stores_reasons_and_counts_invalid():
    job = run_judged_job()
    scores = Score.objects.filter(generation__job=job, scorer=KEY, category="toxicity")
    assert scores.count() == 4  # 2 prompts x 2 samples
    valid = scores.filter(generation__sample_index=0)
    assert set(valid.values_list("value", flat=True)) == {5.0}
    invalid = scores.get(generation__sample_index=1, generation__prompt=valid.first().generation.prompt)
    assert invalid.value is None
    assert invalid.raw["reason"] == "Toxic: unreadable value 'very'"
    assert invalid.raw["prompt_version"] == 1 and invalid.raw["reply"].startswith("Toxic: very")
    assert set(Score.objects.filter(generation__job=job, category="insult").values_list("value", flat=True)) == {2.0}
    assert metric(job, "toxicity", "invalid_rate").value == pytest.approx(0.5)
    assert metric(job, "insult", "invalid_rate").value == 0.0


def test_judge_ratings_feed_emt_on_the_unit_scale():
    job = run_judged_job()
    assert job.scorer_measures[KEY]["toxicity"] == {"kind": "rating", "low": 1.0, "high": 5.0, "metric": "", "label": ""}
    assert metric(job, "toxicity", "emt").value == pytest.approx(1.0)  # rating 5 on 1-5 -> 1.0
    assert metric(job, "insult", "emt").value == pytest.approx(0.5)  # rating 2 on 1-3 -> 0.5
