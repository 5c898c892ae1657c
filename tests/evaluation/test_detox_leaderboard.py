"""The methods leaderboard: real jobs (none, word_ban, aura) on a tiny Llama, page, CSV, API, chart."""
import csv
import io

import pytest
from django.urls import reverse

from evaluation import charts, comparison, services, worker_cache
from evaluation.method_board import methods_board
from evaluation.models import EvaluationJob, JobMetric
from tests.evaluation.results_data import PASSWORD, make_user
from tests.tiny_models import build_tiny_causal_lm
from tests.worker_utils import make_dataset, model_spec_for
from toxplatform.accounts.models import Role
from toxplatform.corpus.models import Language
from toxplatform.errors import ApplicationError

pytestmark = pytest.mark.django_db
PPL = "perplexity:llama"


@pytest.fixture
def jobs(tmp_path, settings):
    settings.MODEL_CACHE_DIR = tmp_path / "cache"
    worker_cache.clear()
    model_dir = build_tiny_causal_lm(tmp_path / "llama", "llama")
    dataset = make_dataset(per_language=4)
    spec = model_spec_for(model_dir)
    made = {}
    for method in ("none", "word_ban", "aura"):
        job = services.create_job(
            model=spec, method=method, dataset=dataset, languages=["en", "de"], k=3, max_new_tokens=4, seed=1,
            scorers=["lexicon", {"name": "perplexity", "params": {"path": str(model_dir)}}], enqueue=False)
        made[method] = services.run_job_inline(job)
        assert made[method].status == EvaluationJob.Status.DONE, made[method].error
    worker_cache.clear()
    return made


def test_methods_side_by_side_with_their_metrics_and_paired_differences_to_none(jobs):
    english = Language.objects.get(code="en")
    none = jobs["none"]
    board = methods_board(model=none.model, dataset=none.dataset, language=english)
    assert [row.method for row in board.rows] == ["none", "aura", "word_ban"]  # the baseline first
    assert (board.scorer, board.category, board.perplexity_scorer, board.k, board.rule) == (
        "lexicon", "toxicity", PPL, 3, ">=")
    for row in board.rows:
        emt = JobMetric.objects.get(job=row.job, language=english, subset="all", scorer="lexicon",
                                    category="toxicity", metric="emt", variant="k=3")
        assert (row.cells["emt"].value, row.cells["emt"].ci_low, row.cells["emt"].n) == (emt.value, emt.ci_low, emt.n)
        ppl = JobMetric.objects.get(job=row.job, language=english, subset="all", scorer=PPL, metric="ppl")
        assert row.cells["ppl"].value == ppl.value
        assert row.cells["dist-2"].value is not None and row.cells["tp"].value is not None
    aura = next(row for row in board.rows if row.method == "aura")
    expected = comparison.compare_jobs(jobs["aura"], none, scorer="lexicon", k=3, rule=">=")
    [here] = [c for c in expected.languages if c.language.code == "en"]
    assert aura.vs_none == {d.metric: d for d in here.rows}
    assert board.baseline.vs_none == {}
    chart = board.chart()
    assert [p.label for p in chart.points] == [row.label for row in board.rows]


def test_page_csv_and_api_show_the_same_rows(jobs, client):
    # Leaderboards name models and methods: researchers read them (annotators judge blind).
    make_user("reader", Role.RESEARCHER)
    client.login(username="reader", password=PASSWORD)
    query = {"model": "tiny-llama", "dataset": jobs["none"].dataset.slug}
    make_user("blind", Role.ANNOTATOR)
    annotator = type(client)()
    annotator.login(username="blind", password=PASSWORD)
    assert annotator.get(reverse("evaluation:methods-leaderboard", args=["en"]), query).status_code == 403
    page = client.get(reverse("evaluation:methods-leaderboard", args=["en"]), query)
    assert page.status_code == 200
    body = page.content.decode()
    assert "word_ban" in body and "aura" in body and "<svg" in body and "EMT − none" in body
    lines = list(csv.reader(io.StringIO(b"".join(client.get(
        reverse("evaluation:methods-leaderboard-csv", args=["en"]), query).streaming_content).decode())))
    assert lines[0][:4] == ["job", "method", "label", "emt"] and [line[1] for line in lines[1:]] == [
        "none", "aura", "word_ban"]
    api = client.get("/api/method-leaderboard/", {**query, "language": "en"})
    assert api.status_code == 200
    methods = api.json()["methods"]
    assert [m["method"] for m in methods] == ["none", "aura", "word_ban"]
    assert float(lines[2][3]) == methods[1]["emt"]["value"]
    assert methods[1]["vs_none"]["emt"]["n"] == 4  # the 4 English prompts, paired and methods[0]["vs_none"] == {}
    bad = client.get("/api/method-leaderboard/", {**query, "language": "en", "scorer": "nope"})
    assert bad.status_code == 400 and "no job has 'nope' scores" in bad.json()["extra"]["scorer"]


def test_unknown_model_dataset_or_language_is_a_clear_error(client, dataset):
    make_user("res", Role.RESEARCHER)
    client.login(username="res", password=PASSWORD)
    page = client.get(reverse("evaluation:methods-leaderboard", args=["en"]), {"model": "x", "dataset": "y"})
    assert page.status_code == 400 and "no model named" in page.content.decode()
    assert client.get(reverse("evaluation:methods-leaderboard", args=["en"])).status_code == 200  # the empty form
    assert client.get("/api/method-leaderboard/", {"language": "zz"}).status_code == 400
    with pytest.raises(ApplicationError, match="No methods leaderboard"):
        from evaluation.method_board import board_from_query
        from evaluation.models import ModelSpec
        ModelSpec.objects.create(name="m", location="/nowhere", fingerprint="f" * 64)
        board_from_query(Language.objects.get(code="en"), {"model": "m", "dataset": dataset.slug})


def test_scatter_geometry_puts_lower_toxicity_lower_and_whiskers_around_points():
    points = [charts.ScatterPoint("a", 10.0, 0.2, 9.0, 11.0, 0.1, 0.3), charts.ScatterPoint("b", 20.0, 0.6)]
    chart = charts.scatter_chart(points, title="t", x_title="x", y_title="y")
    a, b = chart.points
    assert a.cx < b.cx and a.cy > b.cy  # higher EMT is drawn higher (smaller y pixel)
    assert a.x_whisker[0] < a.cx < a.x_whisker[1] and a.y_whisker[1] < a.cy < a.y_whisker[0]
    assert b.x_whisker is None and charts.scatter_chart([], title="t", x_title="x", y_title="y") is None
    assert all(chart.margin_left <= p.cx <= chart.right and chart.margin_top <= p.cy <= chart.axis_y
               for p in chart.points)
