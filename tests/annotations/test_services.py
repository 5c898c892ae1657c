"""Campaign creation, item selection, assignment rules, judgments with history (one process;
the concurrent version is test_concurrency.py)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from annotations import services
from annotations.models import Assignment, Campaign, Item, Judgment
from evaluation.models import EvaluationJob, Generation, Score
from tests.annotations.campaign_data import label_prompt, make_annotator, make_campaign
from tests.evaluation.results_data import make_job
from toxplatform.errors import ApplicationError

pytestmark = pytest.mark.django_db


def test_pairwise_campaign_pairs_two_jobs_outputs_for_the_same_prompt(jobs):
    _, (base, detoxed) = jobs
    campaign = make_campaign([base, detoxed])
    items = list(campaign.items.select_related("generation_a", "generation_b"))
    assert len(items) == 5  # every prompt of the mini dataset has outputs of both jobs
    for item in items:
        assert item.generation_a.prompt_id == item.generation_b.prompt_id == item.prompt_id
        assert {item.generation_a.job_id, item.generation_b.job_id} == {base.pk, detoxed.pk}
        assert item.language_id == item.prompt.language_id


def test_rating_campaign_takes_one_output_per_job_and_prompt(jobs):
    _, (base, detoxed) = jobs
    campaign = make_campaign([base, detoxed], kind="rating", languages=["ar"], categories=["toxicity", "insult"])
    items = list(campaign.items.all())
    assert len(items) == 4 and all(item.generation_b_id is None and item.language_id == "ar" for item in items)


def test_items_per_language_and_disagreement_selection_first(jobs):
    dataset, (base, detoxed) = jobs
    # A second scorer that disagrees strongly on one English output only.
    target = Generation.objects.get(job=base, prompt__language_id="en", prompt__external_id="2")
    for generation in Generation.objects.filter(job=base, prompt__language_id="en"):
        Score.objects.create(generation=generation, scorer="judge", category="toxicity",
                             value=0.95 if generation == target else 0.2)
    campaign = make_campaign([base], kind="rating", languages=["en"], items_per_language=1, selection_mode="disagreement")
    assert [item.generation_a_id for item in campaign.items.all()] == [target.pk]


@pytest.mark.parametrize("change, message", [
    ({"jobs": []}, "at least one finished job"),
    ({"languages": ["xx"]}, "Unknown languages"),
    ({"categories": ["nope"]}, "Unknown categories"),
    ({"categories": ["toxicity", "insult"]}, "one harm category"),
    ({"overlap": 0}, "overlap"),
    ({"kind": "ranking"}, "Unknown campaign kind"),
    ({"selection_mode": "best"}, "Unknown item selection"),
    ({"instructions_by_language": {"fr": "x"}}, "languages the campaign does not have"),
    ({"annotators": ["ghost"]}, "Unknown user"),
    ({"gold": [{"generations": [1], "answer": {"toxicity": "a"}}]}, "gold item"),
])
def test_bad_campaign_input_is_a_clear_error_and_writes_nothing(jobs, change, message):
    _, (base, detoxed) = jobs
    arguments = {"jobs": [base, detoxed], "kind": "pairwise", "languages": ["en"], "categories": ["toxicity"]} | change
    with pytest.raises(ApplicationError, match=message):
        services.create_campaign(name="bad", **arguments)
    assert not Campaign.objects.exists() and not Item.objects.exists()


def test_unfinished_jobs_are_refused(jobs):
    dataset, (base, _) = jobs
    running = make_job("gemma-3-270m", "none", dataset, status=EvaluationJob.Status.RUNNING)
    with pytest.raises(ApplicationError, match="finished jobs only"):
        make_campaign([base, running])


def test_gold_items_are_added_with_their_answers(jobs):
    _, (base, detoxed) = jobs
    a = Generation.objects.get(job=base, prompt__language_id="de")
    b = Generation.objects.get(job=detoxed, prompt__language_id="de")
    campaign = make_campaign([base, detoxed], languages=["de"], gold=[{"generations": [a.pk, b.pk], "answer": {"toxicity": "b"}}])
    gold = campaign.items.get(is_gold=True)
    assert gold.gold_answer == {"toxicity": "b"} and gold.generation_a_id == a.pk


def test_annotator_gets_only_their_languages_and_never_an_item_twice(jobs):
    _, pair = jobs
    annotator = make_annotator("ann", languages=["ar"])
    campaign = make_campaign(pair, annotators=[annotator])
    seen = []
    while (claim := services.next_assignment(campaign=campaign, annotator=annotator)).assignment:
        assignment = claim.assignment
        assert assignment.item.language_id == "ar"
        seen.append(assignment.item_id)
        answer = {"toxicity": "left"}
        services.submit_judgment(assignment_id=assignment.pk, annotator=annotator, data=answer, time_ms=1200)
    assert claim.reason == "empty"
    assert len(seen) == len(set(seen)) == 2


def test_not_enrolled_annotators_get_nothing(jobs):
    _, pair = jobs
    campaign = make_campaign(pair)
    stranger = make_annotator("stranger")
    with pytest.raises(services.NotFound):
        services.next_assignment(campaign=campaign, annotator=stranger)


def test_overlap_holds_and_expired_reservations_return_to_the_pool(jobs):
    _, pair = jobs
    annotators = [make_annotator(f"a{i}", languages=["de"]) for i in range(4)]
    campaign = make_campaign(pair, languages=["de"], overlap=2, annotators=annotators, reservation_minutes=10)
    now = timezone.now()
    first = services.next_assignment(campaign=campaign, annotator=annotators[0], now=now).assignment
    second = services.next_assignment(campaign=campaign, annotator=annotators[1], now=now).assignment
    assert first.item_id == second.item_id
    # Two live reservations fill the overlap of 2: the third annotator gets nothing...
    assert services.next_assignment(campaign=campaign, annotator=annotators[2], now=now).reason == "empty"
    # ...until one of them expires.
    later = now + timedelta(minutes=11)
    services.submit_judgment(assignment_id=first.pk, annotator=annotators[0], data={"toxicity": "tie"}, now=later)
    third = services.next_assignment(campaign=campaign, annotator=annotators[2], now=later).assignment
    assert third is not None and third.item_id == first.item_id
    services.submit_judgment(assignment_id=third.pk, annotator=annotators[2], data={"toxicity": "left"}, now=later)
    # The expired owner comes back too late: the item is full, and the refusal changes nothing.
    with pytest.raises(ApplicationError, match="all the judgments"):
        services.submit_judgment(assignment_id=second.pk, annotator=annotators[1], data={"toxicity": "left"}, now=later)
    item = Item.objects.get(pk=first.item_id)
    assert item.done_count == 2 == Assignment.objects.filter(item=item, state="done").count()
    assert Judgment.objects.filter(assignment__item=item).count() == 2


def test_skips_keep_their_reason_and_do_not_count(jobs):
    _, pair = jobs
    annotators = [make_annotator(f"s{i}", languages=["de"]) for i in range(3)]
    campaign = make_campaign(pair, languages=["de"], overlap=1, annotators=annotators)
    claim = services.next_assignment(campaign=campaign, annotator=annotators[0]).assignment
    with pytest.raises(ApplicationError, match="why"):
        services.skip(assignment_id=claim.pk, annotator=annotators[0], reason="")
    services.skip(assignment_id=claim.pk, annotator=annotators[0], reason="distressing", note="too much")
    skipped = Assignment.objects.get(pk=claim.pk)
    assert (skipped.state, skipped.skip_reason, skipped.skip_note) == ("skipped", "distressing", "too much")
    other = services.next_assignment(campaign=campaign, annotator=annotators[1]).assignment
    assert other.item_id == claim.item_id  # the skip freed the only slot
    assert Item.objects.get(pk=claim.item_id).done_count == 0


def test_an_edit_adds_a_version_and_never_overwrites(jobs):
    _, pair = jobs
    annotator = make_annotator("ed", languages=["de"])
    campaign = make_campaign(pair, languages=["de"], overlap=1, annotators=[annotator], ask_fluency=True)
    assignment = services.next_assignment(campaign=campaign, annotator=annotator).assignment
    first = services.submit_judgment(assignment_id=assignment.pk, annotator=annotator,
                                     data={"toxicity": "left", "fluency": "tie"}, time_ms=900)
    assert services.undo_last(campaign=campaign, annotator=annotator).pk == assignment.pk
    second = services.submit_judgment(assignment_id=assignment.pk, annotator=annotator,
                                      data={"toxicity": "right", "fluency": "tie"}, time_ms=400)
    assert (first.version, second.version) == (1, 2)
    versions = list(Judgment.objects.filter(assignment=assignment).values_list("version", "answer", "time_ms"))
    left, right = ("b", "a") if assignment.swapped else ("a", "b")
    assert versions == [(1, {"toxicity": left, "fluency": "tie"}, 900), (2, {"toxicity": right, "fluency": "tie"}, 400)]
    assert Item.objects.get(pk=assignment.item_id).done_count == 1  # an edit is not another judgment
    item = assignment.item
    shown = [item.generation_b_id, item.generation_a_id] if assignment.swapped else [item.generation_a_id, item.generation_b_id]
    assert first.order_shown == shown


def test_a_bad_answer_is_refused_and_changes_nothing(jobs):
    _, pair = jobs
    annotator = make_annotator("bad", languages=["de"])
    campaign = make_campaign(pair, kind="rating", languages=["de"], categories=["toxicity", "insult"], annotators=[annotator])
    assignment = services.next_assignment(campaign=campaign, annotator=annotator).assignment
    for data in [{"toxicity": "3"}, {"toxicity": "6", "insult": "1"}, {"toxicity": "<b>", "insult": "1"}]:
        with pytest.raises(ApplicationError):
            services.submit_judgment(assignment_id=assignment.pk, annotator=annotator, data=data)
    assert not Judgment.objects.exists() and Assignment.objects.get(pk=assignment.pk).state == "reserved"
    judgment = services.submit_judgment(assignment_id=assignment.pk, annotator=annotator, data={"toxicity": "5", "insult": "1"})
    assert judgment.answer == {"toxicity": 5, "insult": 1}


def test_opted_out_categories_never_come(jobs):
    dataset, pair = jobs
    label_prompt(dataset, "en", "1", "self-harm")
    annotator = make_annotator("opt", languages=["en"], opted_out=["self-harm"])
    campaign = make_campaign(pair, languages=["en"], annotators=[annotator])
    seen = []
    while (assignment := services.next_assignment(campaign=campaign, annotator=annotator).assignment):
        seen.append(assignment.item.prompt.external_id)
        services.submit_judgment(assignment_id=assignment.pk, annotator=annotator, data={"toxicity": "tie"})
    assert seen == ["2"]


def test_day_cap_holds_across_skips(jobs):
    _, pair = jobs
    annotator = make_annotator("cap", daily_cap=2)
    campaign = make_campaign(pair, annotators=[annotator])
    for _ in range(2):
        assignment = services.next_assignment(campaign=campaign, annotator=annotator).assignment
        services.skip(assignment_id=assignment.pk, annotator=annotator, reason="unsure")
    assert services.next_assignment(campaign=campaign, annotator=annotator).reason == "cap"
    tomorrow = timezone.now() + timedelta(days=1)
    assert services.next_assignment(campaign=campaign, annotator=annotator, now=tomorrow).assignment is not None


def test_another_annotators_assignment_is_not_found(jobs):
    _, pair = jobs
    owner, other = make_annotator("owner"), make_annotator("other")
    campaign = make_campaign(pair, annotators=[owner, other])
    assignment = services.next_assignment(campaign=campaign, annotator=owner).assignment
    with pytest.raises(services.NotFound):
        services.submit_judgment(assignment_id=assignment.pk, annotator=other, data={"toxicity": "left"})
    with pytest.raises(services.NotFound):
        services.skip(assignment_id=assignment.pk, annotator=other, reason="other")
