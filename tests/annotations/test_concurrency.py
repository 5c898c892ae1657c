"""Many annotators at once against PostgreSQL: threads, each with its own database connection,
asking for items and submitting concurrently. Afterwards the database is checked exactly:
no item over its overlap, no (item, annotator) twice, abandoned reservations taken over."""
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from annotations import services
from annotations.models import Assignment, Item, Judgment
from tests.annotations.campaign_data import make_annotator, make_campaign
from tests.evaluation.results_data import add_generation, make_job
from toxplatform.corpus.models import Dataset, Prompt
from toxplatform.errors import ApplicationError

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ITEMS = 24
OVERLAP = 3
ANNOTATORS = 12


def big_campaign(annotators, **options):
    dataset = Dataset.objects.create(slug="conc", name="Concurrency", format="jsonl")
    jobs = [make_job("m", "none", dataset), make_job("m", "system_prompt", dataset)]
    for index in range(ITEMS):
        prompt = Prompt.objects.create(dataset=dataset, language_id="en", external_id=str(index), text=f"prompt {index}")
        for job in jobs:
            add_generation(job, prompt, f"{job.detox_method} {index}", score=0.5)
    return make_campaign(jobs, languages=["en"], items_per_language=ITEMS, overlap=OVERLAP, annotators=annotators,
                         daily_cap=1000, reservation_minutes=10, **options)


def run_threads(target, users):
    barrier = threading.Barrier(len(users))
    errors = []

    def run(user):
        try:
            barrier.wait()
            target(user)
        except Exception as exc:  # reported by the test, not swallowed
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return errors


def check_invariants(campaign):
    assert connection.vendor == "postgresql"
    pairs = Counter(Assignment.objects.filter(item__campaign=campaign).values_list("item_id", "annotator_id"))
    assert max(pairs.values()) == 1
    for item in Item.objects.filter(campaign=campaign):
        done = Assignment.objects.filter(item=item, state="done").count()
        assert done == item.done_count <= OVERLAP
        assert Judgment.objects.filter(assignment__item=item, version=1).count() == done


def test_concurrent_next_and_submit_never_exceed_the_overlap():
    users = [make_annotator(f"c{i}", languages=["en"]) for i in range(ANNOTATORS)]
    campaign = big_campaign(users)
    claimed = Counter()

    def work(user):
        while (claim := services.next_assignment(campaign=campaign, annotator=user)).assignment:
            claimed[user.pk] += 1
            services.submit_judgment(assignment_id=claim.assignment.pk, annotator=user, data={"toxicity": "left"})

    assert run_threads(work, users) == []
    check_invariants(campaign)
    # Twelve annotators are more than enough: every item is finished exactly.
    assert list(Item.objects.filter(campaign=campaign).values_list("done_count", flat=True)) == [OVERLAP] * ITEMS
    assert sum(claimed.values()) == ITEMS * OVERLAP


def test_abandoned_reservations_come_back_under_concurrency():
    users = [make_annotator(f"r{i}", languages=["en"]) for i in range(ANNOTATORS)]
    campaign = big_campaign(users)
    start = timezone.now()
    quitters, workers = users[:6], users[6:]

    def abandon(user):  # take an item and walk away
        assert services.next_assignment(campaign=campaign, annotator=user, now=start).assignment is not None

    assert run_threads(abandon, quitters) == []
    later = start + timedelta(minutes=11)

    def work(user):
        while (claim := services.next_assignment(campaign=campaign, annotator=user, now=later)).assignment:
            services.submit_judgment(assignment_id=claim.assignment.pk, annotator=user, data={"toxicity": "tie"}, now=later)

    # The six remaining annotators can finish each item to its overlap of 3, including the ones
    # the quitters hold: their reservations expired.
    assert run_threads(work, workers) == []
    check_invariants(campaign)
    assert set(Item.objects.filter(campaign=campaign).values_list("done_count", flat=True)) == {OVERLAP}
    assert Assignment.objects.filter(annotator__in=quitters, state="reserved").count() == 6


def test_racing_submits_of_expired_reservations_stop_at_the_overlap():
    """Every annotator holds a reservation of the same item (all expired but one slot's worth),
    and all submit at once: exactly `overlap` of them get in; the rest get a clear refusal."""
    users = [make_annotator(f"x{i}", languages=["en"]) for i in range(ANNOTATORS)]
    campaign = big_campaign(users)
    item = Item.objects.filter(campaign=campaign).first()
    start = timezone.now() - timedelta(hours=1)
    held = {user.pk: Assignment.objects.create(item=item, annotator=user, claimed_at=start,
                                               expires_at=start + timedelta(minutes=10)) for user in users}
    refusals = []

    def submit(user):
        try:
            services.submit_judgment(assignment_id=held[user.pk].pk, annotator=user, data={"toxicity": "right"})
        except ApplicationError as error:
            refusals.append(error.message)

    assert run_threads(submit, users) == []
    check_invariants(campaign)
    assert Item.objects.get(pk=item.pk).done_count == OVERLAP
    assert len(refusals) == ANNOTATORS - OVERLAP and all("all the judgments" in message for message in refusals)
