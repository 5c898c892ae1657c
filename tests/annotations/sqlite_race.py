"""Run by test_sqlite_concurrency.py in a child process: the embedded default (a SQLite file,
migrated here) with many processes claiming and submitting at once. Prints one JSON line with
what the database holds afterwards."""
import json
import multiprocessing
import os
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
VAR = sys.argv[1]
os.environ["TOXPLATFORM_VAR_DIR"] = VAR
os.environ["DATABASE_URL"] = f"sqlite:///{VAR}/race.sqlite3"
os.environ["DJANGO_SETTINGS_MODULE"] = "toxplatform.settings"
os.environ.pop("DB_CONN_MAX_AGE", None)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402

PROCESSES, ITEMS, OVERLAP = 8, 12, 3


def setup():
    from tests.annotations.campaign_data import make_annotator, make_campaign
    from tests.evaluation.results_data import add_generation, make_job
    from toxplatform.corpus.models import Dataset, Prompt

    call_command("migrate", verbosity=0)
    dataset = Dataset.objects.create(slug="race", name="race", format="jsonl")
    jobs = [make_job("m", "none", dataset), make_job("m", "system_prompt", dataset)]
    for index in range(ITEMS):
        prompt = Prompt.objects.create(dataset=dataset, language_id="en", external_id=str(index), text=str(index))
        for job in jobs:
            add_generation(job, prompt, f"{job.pk} {index}")
    users = [make_annotator(f"u{i}", languages=["en"]) for i in range(PROCESSES)]
    campaign = make_campaign(jobs, languages=["en"], items_per_language=ITEMS, overlap=OVERLAP, annotators=users,
                             daily_cap=1000)
    return campaign.pk, [user.pk for user in users]


def work(args):
    campaign_id, user_id, start = args
    from django.contrib.auth import get_user_model

    from annotations import services
    from annotations.models import Campaign

    connections.close_all()
    start.wait()
    user = get_user_model().objects.get(pk=user_id)
    campaign = Campaign.objects.get(pk=campaign_id)
    done, errors = 0, []
    while True:
        try:
            claim = services.next_assignment(campaign=campaign, annotator=user)
            if claim.assignment is None:
                break
            services.submit_judgment(assignment_id=claim.assignment.pk, annotator=user, data={"toxicity": "left"})
            done += 1
        except Exception as exc:  # counted and reported: the test expects none
            errors.append(repr(exc))
            break
    connections.close_all()
    return done, errors


if __name__ == "__main__":
    campaign_id, user_ids = setup()
    from annotations.models import Assignment, Item

    connections.close_all()
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager:
        start = manager.Event()
        with context.Pool(PROCESSES) as pool:
            pending = pool.map_async(work, [(campaign_id, user_id, start) for user_id in user_ids])
            start.set()
            results = pending.get(timeout=300)
    pairs = Counter(Assignment.objects.values_list("item_id", "annotator_id"))
    print(json.dumps({
        "vendor": connections["default"].vendor,
        "done": sum(done for done, _ in results),
        "errors": [error for _, errors in results for error in errors],
        "done_counts": sorted(Item.objects.values_list("done_count", flat=True)),
        "done_assignments": sorted(Counter(Assignment.objects.filter(state="done").values_list("item_id", flat=True)).values()),
        "max_pair": max(pairs.values()),
    }))
