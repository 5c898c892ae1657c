"""The annotation API: campaigns for researchers, the annotator's own queue, and who may call what."""
import pytest
from rest_framework.test import APIClient

from annotations.models import Assignment, Campaign, Judgment
from tests.annotations.campaign_data import make_annotator, make_campaign
from tests.evaluation.results_data import make_user
from toxplatform.accounts.models import Role

pytestmark = pytest.mark.django_db


def api(user=None):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def test_researcher_creates_a_campaign_and_reads_judgments(jobs):
    _, pair = jobs
    researcher = make_user("res", Role.RESEARCHER)
    annotator = make_annotator("ann", languages=["de"])
    body = {"name": "API campaign", "kind": "pairwise", "jobs": [j.pk for j in pair], "languages": ["de"],
            "categories": ["toxicity"], "overlap": 1, "annotators": ["ann"]}
    response = api(researcher).post("/api/campaigns/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["items"] == 1 and response.json()["annotators"] == ["ann"]
    bad = api(researcher).post("/api/campaigns/", body | {"languages": ["xx"]}, format="json")
    assert bad.status_code == 400 and bad.json()["message"] == "Unknown languages."
    assert Campaign.objects.count() == 1

    campaign_id = response.json()["id"]
    work = api(annotator).post("/api/assignments/next/", {"campaign": campaign_id}, format="json")
    assert work.status_code == 200
    item = work.json()
    assert [o["side"] for o in item["outputs"]] == ["A", "B"] and item["language"] == "de"
    assert "job" not in str(item).lower() and "gemma" not in str(item)
    answered = api(annotator).post(f"/api/assignments/{item['assignment']}/answer/", {"answer": {"toxicity": "left"}, "time_ms": 700}, format="json")
    assert answered.status_code == 201 and answered.json()["version"] == 1
    none_left = api(annotator).post("/api/assignments/next/", {"campaign": campaign_id}, format="json")
    assert none_left.status_code == 204 and none_left["X-Queue-State"] == "empty"
    records = api(researcher).get(f"/api/campaigns/{campaign_id}/judgments/").json()["results"]
    assert len(records) == 1 and records[0]["time_ms"] == 700 and records[0]["annotator_id"] == annotator.pk


def test_skip_and_bad_answers_through_the_api(jobs):
    _, pair = jobs
    annotator = make_annotator("ann", languages=["de"])
    campaign = make_campaign(pair, languages=["de"], annotators=[annotator], kind="rating", categories=["toxicity"])
    item = api(annotator).post("/api/assignments/next/", {"campaign": campaign.pk}, format="json").json()
    bad = api(annotator).post(f"/api/assignments/{item['assignment']}/answer/", {"answer": {"toxicity": 9}}, format="json")
    assert bad.status_code == 400 and "choices" in bad.json()["message"]
    skipped = api(annotator).post(f"/api/assignments/{item['assignment']}/skip/", {"reason": "language"}, format="json")
    assert skipped.status_code == 200 and skipped.json()["state"] == "skipped"
    assert not Judgment.objects.exists()


def test_api_authorization(jobs):
    _, pair = jobs
    owner, other, outsider = make_annotator("owner"), make_annotator("other"), make_annotator("outsider")
    researcher = make_user("res", Role.RESEARCHER)
    campaign = make_campaign(pair, annotators=[owner, other])
    mine = api(owner).post("/api/assignments/next/", {"campaign": campaign.pk}, format="json").json()["assignment"]
    routes = [("get", "/api/campaigns/"), ("get", f"/api/campaigns/{campaign.pk}/"),
              ("get", f"/api/campaigns/{campaign.pk}/judgments/"), ("post", "/api/campaigns/")]
    queue = [("post", "/api/assignments/next/"), ("get", f"/api/assignments/{mine}/"),
             ("post", f"/api/assignments/{mine}/answer/"), ("post", f"/api/assignments/{mine}/skip/")]
    body = {"campaign": campaign.pk, "answer": {"toxicity": "left"}, "reason": "other"}
    for method, path in routes + queue:
        assert getattr(api(), method)(path, body, format="json").status_code == 401, path
    for method, path in routes:
        assert getattr(api(owner), method)(path, body, format="json").status_code == 403, path
    for method, path in queue:
        assert getattr(api(researcher), method)(path, body, format="json").status_code == 403, path
    for method, path in queue[1:]:
        assert getattr(api(other), method)(path, body, format="json").status_code == 404, path
    assert api(outsider).post("/api/assignments/next/", body, format="json").status_code == 404
    for path in [f"/api/jobs/{pair[0].pk}/", f"/api/jobs/{pair[0].pk}/samples/"]:
        assert api(owner).get(path).status_code == 403
    assert Assignment.objects.get(pk=mine).state == "reserved" and not Judgment.objects.exists()


def test_the_schema_lists_the_annotation_routes(db):
    schema = api(make_user("res", Role.RESEARCHER)).get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "/api/campaigns/" in text and "/api/assignments/next/" in text
