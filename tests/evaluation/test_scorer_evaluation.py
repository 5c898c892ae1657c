"""Scorer evaluation against real RTP-LX labels (a slice of four languages): numbers checked
against scikit-learn / scipy on the same data, imported external scores (bad lines rejected
with their line number, nothing written), the judge leaderboard, trust markers, pages, API."""
import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score

from evaluation.scorer_trust import agreement_table, imports, scorer_evaluation, selectors
from evaluation.scorer_trust.models import ImportedScore, ImportedScoreSet, ScorerEvaluation
from evaluation.scorers import registry
from evaluation.scorers.measures import HARM_PROBABILITY, rating
from tests.evaluation.results_data import PASSWORD, make_user
from tests.evaluation.scorer_trust_data import RELEASE_PRESENT, RTP_LX_DIR, import_slice, remove_dataset
from toxplatform.accounts.models import Role
from toxplatform.corpus.models import Prompt, PromptLabel
from toxplatform.errors import ApplicationError

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not RELEASE_PRESENT, reason=f"the RTP-LX release is not at {RTP_LX_DIR}"),
]


@pytest.fixture(scope="module")
def corpus(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        import_slice(tmp_path_factory.mktemp("rtp-lx-slice"))
        yield
        remove_dataset()


def majority(values):
    labels, counts = np.unique(values, return_counts=True)
    if (counts == counts.max()).sum() == 1:
        return int(labels[counts.argmax()])
    return int(np.floor(np.mean(values) + 0.5))


def gold(language, category):
    """[(prompt, rater values, majority aggregate)] in the evaluation's order (by prompt id)."""
    labels = PromptLabel.objects.filter(prompt__dataset__slug="rtp-lx", prompt__language_id=language,
                                        category_id=category).select_related("prompt").order_by("prompt_id")
    return [(label.prompt, label.rater_values, majority(label.rater_values)) for label in labels]


def evaluate_json(*args):
    out = StringIO()
    call_command("evaluate_scorer", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_lexicon_evaluation_equals_sklearn_and_scipy(corpus):
    report = evaluate_json("--scorer", "lexicon", "--dataset", "rtp-lx", "--bootstrap", "200")
    assert report["aggregate_rule"] == "majority_then_rounded_mean"
    assert report["mapping_rule"] == "inverse-unit-rounded"
    # The lexicon fills toxicity (and profanity, which RTP-LX has no labels for).
    assert {row["category"] for row in report["results"]} == {"toxicity"}
    scorer = registry.get("lexicon")()
    for language in ("de", "en", "ru", "ar"):
        rows = gold(language, "toxicity")
        from evaluation.scorers import ScoringInput

        values = [r["toxicity"].value for r in scorer.score([ScoringInput("", p.text, language) for p, _, _ in rows])]
        human = [aggregate for _, _, aggregate in rows]
        classes = [1 + int(np.floor(v * 4 + 0.5)) for v in values]  # p in [0, 1] -> 1..5
        row = next(r for r in report["results"] if r["language"] == language)
        assert row["n"] == len(rows) and row["invalid"] == 0
        expected = cohen_kappa_score(human, classes, weights="linear", labels=[1, 2, 3, 4, 5])
        assert row["weighted_kappa"] == pytest.approx(expected, abs=1e-9)
        assert row["exact_agreement"] == pytest.approx(np.mean(np.array(human) == np.array(classes)), abs=1e-12)
        if len(set(values)) > 1:
            assert row["spearman"] == pytest.approx(spearmanr(values, human).statistic, abs=1e-9)
        raters = np.array([r for _, r, _ in rows])
        ceiling = np.mean([cohen_kappa_score(raters[:, i], raters[:, j], weights="linear", labels=[1, 2, 3, 4, 5])
                           for i, j in ((0, 1), (0, 2), (1, 2))])
        assert row["human_ceiling"] == pytest.approx(ceiling, abs=1e-9)
        assert row["human_classes"] == {str(k): human.count(k) for k in range(1, 6)}
        assert sum(row["scorer_classes"].values()) == len(rows)
        assert row["ci_low"] <= row["weighted_kappa"] <= row["ci_high"]
    splits = report["splits"]
    for language in ("ar", "de", "en", "ru"):
        all_n = next(r["n"] for r in report["results"] if r["language"] == language)
        parts = [r["n"] for split in ("transcreated", "cultural") for r in splits[split] if r["language"] == language]
        assert sum(parts) == all_n
    cultural = {r["language"]: r["n"] for r in splits["cultural"]}
    assert cultural and all(n == Prompt.objects.filter(dataset__slug="rtp-lx", language_id=code,
                                                       culturally_specific=True).count()
                            for code, n in cultural.items())


def test_a_language_without_a_term_list_counts_as_invalid(corpus):
    # The lexicon has no Hebrew list; in a language it lacks, every prompt is invalid, not 0.
    evaluation = scorer_evaluation.create_scorer_evaluation(scorer="lexicon", dataset="rtp-lx", languages=["ar"],
                                                            bootstrap=0, enqueue=False)
    evaluation = scorer_evaluation.run_scorer_evaluation(evaluation.pk)
    assert evaluation.status == "done"
    row = evaluation.results.get(subset="all")
    assert row.invalid == 0 and row.n == Prompt.objects.filter(dataset__slug="rtp-lx", language_id="ar").count()


def test_values_map_onto_the_scale_by_the_documented_rule():
    values = np.array([0.0, 0.12, 0.13, 0.5, 0.87, 0.875, 1.0, np.nan, 1.2, -0.1])
    classes = agreement_table.to_scale(values, HARM_PROBABILITY, 1, 5)
    assert classes[:7].tolist() == [1, 1, 2, 3, 4, 5, 5]
    assert np.isnan(classes[7:]).all()  # missing or out of range: invalid, never clamped
    assert agreement_table.to_scale(np.array([1, 2.5, 3, 4]), rating(1, 3), 1, 3)[:3].tolist() == [1, 3, 3]
    assert np.isnan(agreement_table.to_scale(np.array([4.0]), rating(1, 3), 1, 3)[0])
    # A rating on another scale (0-7 severity) goes through the unit interval.
    assert agreement_table.to_scale(np.array([0, 7, 3.5]), rating(0, 7), 1, 3).tolist() == [1, 3, 2]


def write_scores(tmp_path, lines):
    path = tmp_path / "scores.jsonl"
    path.write_text("\n".join(json.dumps(line) if not isinstance(line, str) else line for line in lines) + "\n",
                    encoding="utf-8")
    return path


def test_imported_scores_are_evaluated_like_a_scorer(corpus, tmp_path):
    rows = gold("de", "toxicity")
    insult = {p.id: a for p, _, a in gold("de", "insult")}
    rng = np.random.default_rng(1)
    lines, judged = [], []
    for prompt, _, aggregate in rows:
        value = int(np.clip(aggregate + rng.integers(-1, 2), 1, 5))
        judged.append(value)
        lines.append({"language": "de", "external_id": prompt.external_id,
                      "scores": {"toxicity": value, "insult": insult[prompt.id]}})
    call_command("import_scores", str(write_scores(tmp_path, lines)), "--scorer-name", "fake-gpt4",
                 "--dataset", "rtp-lx", stdout=StringIO())
    report = evaluate_json("--imported", "fake-gpt4", "--dataset", "rtp-lx", "--bootstrap", "0")
    assert report["scorer"] == "imported:fake-gpt4"
    row = next(r for r in report["results"] if r["category"] == "toxicity")
    assert row["language"] == "de" and row["n"] == len(rows)
    human = [a for _, _, a in rows]
    assert row["weighted_kappa"] == pytest.approx(cohen_kappa_score(human, judged, weights="linear",
                                                                    labels=[1, 2, 3, 4, 5]), abs=1e-9)
    perfect = next(r for r in report["results"] if r["category"] == "insult")
    assert perfect["exact_agreement"] == 1.0
    # Languages the file does not cover are not reported (not asked is not invalid).
    assert {r["language"] for r in report["results"]} == {"de"}


@pytest.mark.parametrize("bad_line, message", [
    ({"language": "de", "external_id": "no-such-prompt", "scores": {"toxicity": 2}}, "line 3: no prompt 'no-such-prompt'"),
    ({"language": "de", "external_id": "1", "scores": {"toxicity": 7}}, "line 3: toxicity: 7 is outside its scale 1-5"),
    ({"language": "de", "external_id": "1", "scores": {"insult": "high"}}, "line 3: insult: the value must be a number"),
    ({"language": "de", "external_id": "1", "scores": {"toxic": 2}}, "line 3: unknown harm category 'toxic'"),
    ({"language": "de", "external_id": "0", "scores": {"toxicity": 2}}, "line 3: toxicity of prompt de/0 was already given on line 1"),
    ("{not json", "line 3: not valid JSON"),
    ({"language": "xx", "external_id": "1", "scores": {"toxicity": 2}}, "line 3: no prompt '1' in language 'xx'"),
    ({"language": "de", "external_id": "1"}, 'line 3: give either "scores" or "raw"'),
])
def test_a_bad_import_line_is_rejected_with_its_number_and_changes_nothing(corpus, tmp_path, bad_line, message):
    ImportedScoreSet.objects.filter(name="judge-x").delete()
    sets, scores = ImportedScoreSet.objects.count(), ImportedScore.objects.count()
    path = write_scores(tmp_path, [
        {"language": "de", "external_id": "0", "scores": {"toxicity": 3}},
        {"language": "en", "external_id": "1", "scores": {"toxicity": 1, "insult": 1}},
        bad_line,
        {"language": "de", "external_id": "2", "scores": {"toxicity": 2}},
    ])
    with pytest.raises(ApplicationError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        imports.import_scores(path, name="judge-x", dataset="rtp-lx")
    assert error.value.extra["line"] == 3
    assert (ImportedScoreSet.objects.count(), ImportedScore.objects.count()) == (sets, scores)
    with pytest.raises(CommandError, match="line 3"):
        call_command("import_scores", str(path), "--scorer-name", "judge-x", stdout=StringIO())
    assert (ImportedScoreSet.objects.count(), ImportedScore.objects.count()) == (sets, scores)


def test_an_import_name_in_use_is_refused_unless_replaced(corpus, tmp_path):
    path = write_scores(tmp_path, [{"language": "en", "external_id": "0", "scores": {"toxicity": 2}}])
    imports.import_scores(path, name="twice", dataset="rtp-lx")
    with pytest.raises(ApplicationError, match="exist already"):
        imports.import_scores(path, name="twice", dataset="rtp-lx")
    again = imports.import_scores(path, name="twice", dataset="rtp-lx", replace=True)
    assert ImportedScoreSet.objects.filter(name="twice").get() == again


@pytest.mark.parametrize("kwargs, message", [
    ({"scorer": "nope"}, "Unknown scorer 'nope'"),
    ({"scorer": "lexicon", "imported": "x"}, "one of them"),
    ({"scorer": "lexicon", "categories": ["insult"]}, "gives no score in insult"),
    ({"scorer": "lexicon", "languages": ["fi"]}, "no prompts in fi"),
    ({"scorer": {"name": "lexicon", "params": {"saturation": 0}}, }, "saturation"),
    ({"imported": "missing"}, "No imported scores named 'missing'"),
    ({"scorer": "lexicon", "bootstrap": -1}, "bootstrap"),
    ({"scorer": "lexicon", "aggregate_rule": "median"}, "Unknown aggregate rule"),
])
def test_bad_evaluation_input_is_refused_and_writes_nothing(corpus, kwargs, message):
    before = ScorerEvaluation.objects.count()
    with pytest.raises(ApplicationError, match=message):
        scorer_evaluation.create_scorer_evaluation(dataset="rtp-lx", enqueue=False, **kwargs)
    assert ScorerEvaluation.objects.count() == before


def test_judge_leaderboard_ranks_and_says_when_none_is_good(corpus, tmp_path):
    # Two imported judges on English toxicity: one perfect, one constant.
    rows = gold("en", "toxicity")
    perfect = [{"language": "en", "external_id": p.external_id, "scores": {"toxicity": a}} for p, _, a in rows]
    flat = [{"language": "en", "external_id": p.external_id, "scores": {"toxicity": 1 + (i % 2)}}
            for i, (p, _, a) in enumerate(rows)]
    for name, lines in (("oracle", perfect), ("coin", flat)):
        ImportedScoreSet.objects.filter(name=name).delete()
        imports.import_scores(write_scores(tmp_path, lines), name=name, dataset="rtp-lx")
        evaluation = scorer_evaluation.create_scorer_evaluation(imported=name, dataset="rtp-lx", bootstrap=50,
                                                                enqueue=False)
        scorer_evaluation.run_scorer_evaluation(evaluation.pk)
    board = selectors.language_board("en")
    toxicity = next(b for b in board.boards if b.category.slug == "toxicity")
    ranked = [cell.scorer for cell in toxicity.cells]
    assert ranked.index("imported:oracle") < ranked.index("imported:coin")
    assert toxicity.recommendation.good and toxicity.recommendation.best.scorer == "imported:oracle"
    assert toxicity.human_ceiling is not None
    marker = selectors.scorer_trust("imported:oracle", "en")
    assert marker.measured and marker.kappa == pytest.approx(1.0) and marker.level == "good"
    assert not selectors.scorer_trust("imported:oracle", "sw").measured
    assert selectors.scorer_trust("imported:oracle", "sw").text == "not measured"
    # Only the weak judge measured in German: the platform says none is good there.
    de = [{"language": "de", "external_id": p.external_id, "scores": {"toxicity": 1}} for p, _, _ in gold("de", "toxicity")]
    de[0]["scores"]["toxicity"] = 5
    ImportedScoreSet.objects.filter(name="weak-de").delete()
    imports.import_scores(write_scores(tmp_path, de), name="weak-de", dataset="rtp-lx")
    evaluation = scorer_evaluation.create_scorer_evaluation(imported="weak-de", dataset="rtp-lx", bootstrap=0,
                                                            enqueue=False)
    scorer_evaluation.run_scorer_evaluation(evaluation.pk)
    german = selectors.language_board("de").headline
    assert not german.good and "No scorer agrees well" in german.message


def test_pages_and_api(corpus, client, tmp_path):
    make_user("trust-res", Role.RESEARCHER)
    client.login(username="trust-res", password=PASSWORD)
    evaluation = scorer_evaluation.create_scorer_evaluation(scorer="lexicon", dataset="rtp-lx", languages=["en"],
                                                            bootstrap=20, enqueue=False)
    scorer_evaluation.run_scorer_evaluation(evaluation.pk)
    for name, args in (("judges", []), ("judges-language", ["en"]), ("training-list", []),
                       ("evaluation-list", []), ("evaluation-detail", [evaluation.pk]), ("import-list", [])):
        response = client.get(reverse(f"scorer_trust:{name}", args=args))
        assert response.status_code == 200, name
    page = client.get(reverse("scorer_trust:judges-language", args=["en"])).content.decode()
    assert "lexicon" in page and "human ceiling" in page.lower() and "majority_then_rounded_mean" in page
    # A hostile scorer parameter is data: escaped on the page.
    hostile = '<script>alert(1)</script>'
    response = client.post(reverse("scorer_trust:evaluation-list"),
                           {"scorer": f'lexicon:{{"x": "{hostile}"}}', "dataset": "rtp-lx", "bootstrap": 0,
                            "aggregate_rule": "majority_then_rounded_mean"})
    assert response.status_code == 400
    assert hostile not in response.content.decode() and "&lt;script&gt;" in response.content.decode()
    api = client.get("/api/judges/en/").json()
    assert api["language"] == "en" and api["categories"][0]["scorers"][0]["scorer"] == "lexicon"
    results = client.get(f"/api/scorer-evaluations/{evaluation.pk}/results/").json()
    assert results["aggregate_rule"] == "majority_then_rounded_mean" and results["results"][0]["language"] == "en"
    bad = client.post("/api/scorer-evaluations/", {"scorer": "nope", "dataset": "rtp-lx"}, content_type="application/json")
    assert bad.status_code == 400 and "Unknown scorer" in bad.json()["message"]
    # Annotators see the judge leaderboard, not the evaluations (gold labels and scores).
    make_user("trust-ann", Role.ANNOTATOR)
    client.login(username="trust-ann", password=PASSWORD)
    assert client.get(reverse("scorer_trust:judges")).status_code == 200
    assert client.get(reverse("scorer_trust:evaluation-list")).status_code == 403
    assert client.get("/api/scorer-evaluations/").status_code == 403


def test_raw_judge_replies_are_parsed_and_bad_ones_stored_invalid(corpus, tmp_path):
    """The "raw" form reads a judge's reply with the llm_judge parser; a reply the parser
    rejects is stored as invalid with its reason (counted in `invalid`), not a failed import."""
    pytest.importorskip("evaluation.scorers.judge_parser", reason="the llm_judge parser is not merged yet")
    rubric = "Toxic: {t}\nIdentityAttack: 1\nBias: 1\nMicroaggression: 1\nViolence: 1\nSelf-harm: 1\nInsult: {i}\nSexualContent: 1"
    rows = gold("en", "toxicity")[:6]
    lines = [{"language": "en", "external_id": p.external_id, "raw": "Sure.\n" + rubric.format(t=a, i=1)}
             for p, _, a in rows[:5]]
    lines.append({"language": "en", "external_id": rows[5][0].external_id, "raw": "I cannot rate this."})
    score_set = imports.import_scores(write_scores(tmp_path, lines), name="raw-judge", dataset="rtp-lx")
    stored = ImportedScore.objects.filter(score_set=score_set, category="toxicity")
    assert stored.exclude(value=None).count() == 5
    invalid = stored.get(value=None)
    assert invalid.raw["reason"]
    evaluation = scorer_evaluation.create_scorer_evaluation(imported="raw-judge", dataset="rtp-lx", bootstrap=0,
                                                            enqueue=False)
    evaluation = scorer_evaluation.run_scorer_evaluation(evaluation.pk)
    row = evaluation.results.get(language_id="en", category="toxicity", subset="all")
    assert (row.n, row.invalid, row.exact_agreement) == (5, 1, 1.0)
