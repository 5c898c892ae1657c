"""Pages through Django's test client: the annotator's loop, the dashboard with its numbers,
exports, hostile text escaped everywhere, and who may open what."""
import csv
import io
import json

import pytest
from django.urls import reverse

from annotations import services
from annotations.models import Assignment, Campaign, Judgment
from tests.annotations.campaign_data import HOSTILE, make_annotator, make_campaign, make_jobs
from tests.evaluation.results_data import make_user
from toxplatform.accounts.models import Role

pytestmark = pytest.mark.django_db


def login(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def hostile():
    """Jobs whose every output (and the model name) is hostile text."""
    texts = {(lang, ext): (HOSTILE + " one", HOSTILE + " two") for lang, ext in
             [("en", "1"), ("en", "2"), ("ar", "1"), ("ar", "2"), ("de", "1")]}
    dataset, jobs = make_jobs(texts=texts)
    jobs[0].model.name = "<b>model</b>"
    jobs[0].model.save()
    return dataset, jobs


def label_all(campaign, annotators, answer):
    for annotator in annotators:
        while (claim := services.next_assignment(campaign=campaign, annotator=annotator)).assignment:
            services.submit_judgment(assignment_id=claim.assignment.pk, annotator=annotator, data=answer(claim.assignment),
                                     time_ms=1000)


def test_annotator_loop_next_answer_next(client, jobs):
    _, pair = jobs
    annotator = make_annotator("ann", languages=["de"])
    campaign = make_campaign(pair, languages=["de"], annotators=[annotator])
    login(client, annotator)
    response = client.get(reverse("annotations:work", args=[campaign.pk]))
    assignment = Assignment.objects.get(annotator=annotator)
    page = response.content.decode()
    assert response.status_code == 200 and f'data-assignment="{assignment.pk}"' in page
    # A reload shows the same held item; its own address shows it too.
    assert f'data-assignment="{assignment.pk}"' in client.get(reverse("annotations:work", args=[campaign.pk])).content.decode()
    assert f'data-assignment="{assignment.pk}"' in client.get(reverse("annotations:item", args=[assignment.pk])).content.decode()
    assert Assignment.objects.count() == 1
    assert 'lang="de" dir="ltr"' in page and "<kbd>1</kbd> A (left)" in page
    # Blind: no model, method or job names anywhere on the page.
    for secret in ["gemma", "system_prompt", f"job {pair[0].pk}", f"#{pair[0].pk}"]:
        assert secret not in page
    response = client.post(reverse("annotations:answer", args=[assignment.pk]), {"toxicity": "right", "time_ms": "2500"})
    assert response.status_code == 302 and response.url == reverse("annotations:work", args=[campaign.pk])
    judgment = Judgment.objects.get()
    assert judgment.time_ms == 2500 and len(judgment.order_shown) == 2
    page = client.get(response.url).content.decode()
    assert 'data-queue-state="empty"' in page


def test_a_bad_answer_shows_the_error_and_changes_nothing(client, jobs):
    _, pair = jobs
    annotator = make_annotator("ann", languages=["de"])
    campaign = make_campaign(pair, languages=["de"], annotators=[annotator])
    login(client, annotator)
    client.get(reverse("annotations:work", args=[campaign.pk]))
    assignment_id = Assignment.objects.get(annotator=annotator).pk
    response = client.post(reverse("annotations:answer", args=[assignment_id]), {"toxicity": "sideways"})
    assert response.status_code == 400 and "Not one of the choices" in response.content.decode()
    assert not Judgment.objects.exists()


def test_hostile_text_is_escaped_on_annotator_and_dashboard_pages(client, hostile):
    _, pair = hostile
    annotators = [make_annotator(f"h{i}", languages=["en", "ar", "de"]) for i in range(2)]
    researcher = make_user("res", Role.RESEARCHER)
    campaign = make_campaign(pair, annotators=annotators, instructions=HOSTILE, blur_text=True)
    Campaign.objects.filter(pk=campaign.pk).update(name=HOSTILE)
    login(client, annotators[0])
    pages = [client.get(reverse("annotations:index")), client.get(reverse("annotations:work", args=[campaign.pk]))]
    label_all(campaign, annotators, lambda a: {"toxicity": "left"})
    login(client, researcher)
    pages += [client.get(reverse("annotations:index")), client.get(reverse("annotations:campaign-detail", args=[campaign.pk]))]
    for response in pages:
        html = response.content.decode()
        assert response.status_code == 200
        assert "<script>window.__pwned" not in html and "<img src=x" not in html and "<b>model</b>" not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in pages[1].content.decode()
    assert "&lt;b&gt;model&lt;/b&gt;" in pages[3].content.decode()


def test_dashboard_shows_agreement_ranking_position_bias_and_gold(client, jobs):
    _, pair = jobs
    annotators = [make_annotator(f"d{i}") for i in range(3)]
    researcher = make_user("res", Role.RESEARCHER)
    from evaluation.models import Generation
    a = Generation.objects.get(job=pair[0], prompt__language_id="de")
    b = Generation.objects.get(job=pair[1], prompt__language_id="de")
    campaign = make_campaign(pair, annotators=annotators, overlap=3,
                             gold=[{"generations": [a.pk, b.pk], "answer": {"toxicity": "b"}}])
    # Everyone says the detoxed job's output (b) is worse, except on the gold item for d0.
    label_all(campaign, annotators, lambda asg: {"toxicity": "left" if asg.swapped else "right"})
    login(client, researcher)
    html = client.get(reverse("annotations:campaign-detail", args=[campaign.pk])).content.decode()
    assert "Agreement between annotators" in html and "Ranking of jobs: toxicity" in html
    assert "Position bias" in html and "Gold items" in html and "Krippendorff" in html
    ranking_section = html.split("Ranking of jobs")[1]
    assert ranking_section.index("system_prompt") < ranking_section.index("· none")  # b's job ranks first


def test_rating_dashboard_compares_humans_with_scorers(client, jobs):
    _, pair = jobs
    annotators = [make_annotator(f"r{i}") for i in range(2)]
    researcher = make_user("res", Role.RESEARCHER)
    campaign = make_campaign(pair, kind="rating", annotators=annotators, categories=["toxicity", "insult"])
    label_all(campaign, annotators, lambda asg: {"toxicity": "2" if asg.item.generation_a.job_id == pair[0].pk else "4",
                                                 "insult": "1"})
    login(client, researcher)
    html = client.get(reverse("annotations:campaign-detail", args=[campaign.pk])).content.decode()
    assert "Humans and automatic scorers" in html and "lexicon" in html
    assert "1.000" in html  # perfect agreement on toxicity


def test_exports_hold_every_version_and_are_formula_safe(client, hostile):
    _, pair = hostile
    annotator = make_annotator("x", languages=["de"])
    researcher = make_user("res", Role.RESEARCHER)
    campaign = make_campaign(pair, languages=["de"], annotators=[annotator], overlap=1)
    assignment = services.next_assignment(campaign=campaign, annotator=annotator).assignment
    services.submit_judgment(assignment_id=assignment.pk, annotator=annotator, data={"toxicity": "left"}, time_ms=10)
    services.submit_judgment(assignment_id=assignment.pk, annotator=annotator, data={"toxicity": "tie"}, time_ms=20)
    Campaign.objects.filter(pk=campaign.pk).update(name="=HYPERLINK(1)")
    login(client, researcher)
    lines = b"".join(client.get(reverse("annotations:export-jsonl", args=[campaign.pk])).streaming_content).decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["version"], r["latest"], r["time_ms"]) for r in records] == [(1, False, 10), (2, True, 20)]
    assert records[0]["annotator_id"] == annotator.pk and records[0]["left_generation"] in (assignment.item.generation_a_id, assignment.item.generation_b_id)
    assert records[1]["answer"] == {"toxicity": "tie"}
    text = b"".join(client.get(reverse("annotations:export-csv", args=[campaign.pk])).streaming_content).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][-1] == "answer_toxicity" and [row[-1] for row in rows[1:]] == ["a" if not assignment.swapped else "b", "tie"]


def test_campaign_form_creates_a_campaign_and_shows_service_errors(client, jobs):
    _, pair = jobs
    researcher = make_user("res", Role.RESEARCHER)
    login(client, researcher)
    data = {"name": "Form campaign", "kind": "pairwise", "jobs": [j.pk for j in pair], "languages": ["en", "ar"],
            "categories": ["toxicity"], "items_per_language": 5, "overlap": 2, "selection": "random", "seed": 1,
            "break_after_minutes": 30, "daily_cap": 100, "reservation_minutes": 15, "instructions_by_language": '{"ar": "اقرأ"}'}
    response = client.post(reverse("annotations:campaign-create"), data)
    campaign = Campaign.objects.get()
    assert response.status_code == 302 and campaign.items.count() == 4
    assert campaign.instructions_for("ar") == "اقرأ"
    response = client.post(reverse("annotations:campaign-create"), data | {"categories": ["toxicity", "insult"]})
    assert response.status_code == 400 and "one harm category" in response.content.decode()
    response = client.post(reverse("annotations:campaign-create"), data | {"gold": "{not json"})
    assert response.status_code == 400 and "Not valid JSON" in response.content.decode()
    assert Campaign.objects.count() == 1


def test_preferences_opt_out_and_cap(client, db):
    annotator = make_annotator("p")
    login(client, annotator)
    response = client.post(reverse("annotations:preferences"), {"opted_out": ["self-harm", "violence"], "daily_cap": "25"})
    assert response.status_code == 302
    profile = annotator.annotator_profile
    profile.refresh_from_db()
    assert sorted(profile.opted_out_categories.values_list("slug", flat=True)) == ["self-harm", "violence"]
    assert profile.daily_cap == 25


# --- who may open what ----------------------------------------------------------------------------


@pytest.fixture
def world(jobs):
    _, pair = jobs
    owner, other = make_annotator("owner"), make_annotator("other")
    outsider = make_annotator("outsider")
    researcher = make_user("res", Role.RESEARCHER)
    campaign = make_campaign(pair, annotators=[owner, other])
    mine = services.next_assignment(campaign=campaign, annotator=owner).assignment
    return {"campaign": campaign, "owner": owner, "other": other, "outsider": outsider, "researcher": researcher,
            "assignment": mine, "job": pair[0]}


RESEARCHER_PAGES = [("annotations:campaign-create", "none"), ("annotations:campaign-detail", "campaign"),
                    ("annotations:export-jsonl", "campaign"), ("annotations:export-csv", "campaign")]
RESEARCHER_POSTS = [("annotations:campaign-enroll", "campaign"), ("annotations:campaign-status", "campaign")]
ANNOTATOR_PAGES = [("annotations:work", "campaign"), ("annotations:item", "assignment")]
ANNOTATOR_POSTS = [("annotations:answer", "assignment"), ("annotations:skip", "assignment"), ("annotations:undo", "campaign")]


def url(world, name, arg):
    return reverse(name, args=[] if arg == "none" else [world[arg].pk])


def test_anonymous_users_get_nothing(client, world):
    for name, arg in RESEARCHER_PAGES + ANNOTATOR_PAGES + [("annotations:index", "none"), ("annotations:preferences", "none")]:
        response = client.get(url(world, name, arg))
        assert response.status_code == 302 and "/accounts/login/" in response.url, name
    for name, arg in RESEARCHER_POSTS + ANNOTATOR_POSTS:
        response = client.post(url(world, name, arg), {"toxicity": "left", "reason": "other", "usernames": "other"})
        assert response.status_code == 302 and "/accounts/login/" in response.url, name
    assert not Judgment.objects.exists()


def test_annotators_cannot_open_researcher_pages_or_job_outputs(client, world):
    login(client, world["owner"])
    for name, arg in RESEARCHER_PAGES:
        assert client.get(url(world, name, arg)).status_code == 403, name
    for name, arg in RESEARCHER_POSTS:
        assert client.post(url(world, name, arg), {"status": "closed", "usernames": "outsider"}).status_code == 403, name
    job = world["job"]
    for path in [f"/evaluation/jobs/{job.pk}/", f"/evaluation/jobs/{job.pk}/samples/", f"/evaluation/jobs/{job.pk}/samples.jsonl",
                 "/corpus/", f"/api/jobs/{job.pk}/samples/"]:
        assert client.get(path).status_code in (403, 401), path
    assert Campaign.objects.get().status == "active" and Campaign.objects.get().annotators.count() == 2


def test_an_annotator_cannot_open_or_answer_anothers_item(client, world):
    login(client, world["other"])
    for name, arg in ANNOTATOR_PAGES[1:]:
        assert client.get(url(world, name, arg)).status_code == 404, name
    for name, arg in ANNOTATOR_POSTS[:2]:
        assert client.post(url(world, name, arg), {"toxicity": "left", "reason": "other"}).status_code == 404, name
    assert Assignment.objects.get(pk=world["assignment"].pk).state == "reserved" and not Judgment.objects.exists()


def test_not_enrolled_annotators_and_researchers_cannot_work(client, world):
    login(client, world["outsider"])
    assert client.get(url(world, "annotations:work", "campaign")).status_code == 404
    assert client.post(url(world, "annotations:undo", "campaign")).status_code == 404
    assert client.get(url(world, "annotations:item", "assignment")).status_code == 404
    login(client, world["researcher"])
    assert client.get(url(world, "annotations:work", "campaign")).status_code == 403
    assert client.get(reverse("annotations:preferences")).status_code == 403
    for name, arg in ANNOTATOR_POSTS:
        assert client.post(url(world, name, arg), {"toxicity": "left", "reason": "other"}).status_code == 403, name
    assert client.get(url(world, "annotations:item", "assignment")).status_code == 403
    assert client.get(url(world, "annotations:campaign-detail", "campaign")).status_code == 200


def test_users_without_a_role_get_403(client, world):
    nobody = make_user("nobody", role=None)
    login(client, nobody)
    assert client.get(reverse("annotations:index")).status_code == 403
