"""Every judgment of a campaign as files (JSON Lines and CSV), every version of every answer:
item, jobs, annotator id, sides shown, timing, version. CSV cells go through the evaluation
exports' formula-safe writer (one helper for the whole platform)."""
from __future__ import annotations

import json
from collections.abc import Iterator

from annotations.models import Campaign, Judgment
from annotations.selectors import campaign_questions
from evaluation.exports import to_csv

EXPORT_BATCH = 2000
BASE_COLUMNS = [
    "campaign", "kind", "item", "language", "prompt_id", "is_gold", "generation_a", "job_a", "generation_b", "job_b",
    "annotator_id", "assignment", "left_generation", "right_generation", "version", "latest", "time_ms",
    "claimed_at", "submitted_at",
]


def judgment_records(campaign: Campaign) -> Iterator[dict]:
    judgments = (
        Judgment.objects.filter(assignment__item__campaign=campaign)
        .select_related("assignment__item__generation_a", "assignment__item__generation_b")
        .order_by("assignment__item_id", "assignment_id", "version")
    )
    # Ordered by assignment then version: a row is the latest when the next row is another assignment's.
    pending = None
    for judgment in judgments.iterator(chunk_size=EXPORT_BATCH):
        if pending is not None:
            yield _record(campaign, pending, latest=pending.assignment_id != judgment.assignment_id)
        pending = judgment
    if pending is not None:
        yield _record(campaign, pending, latest=True)


def _record(campaign: Campaign, judgment: Judgment, *, latest: bool) -> dict:
    assignment = judgment.assignment
    item = assignment.item
    shown = list(judgment.order_shown) + [None] * (2 - len(judgment.order_shown))
    return {
        "campaign": campaign.pk, "kind": campaign.kind, "item": item.pk, "language": item.language_id,
        "prompt_id": item.prompt_id, "is_gold": item.is_gold,
        "generation_a": item.generation_a_id, "job_a": item.generation_a.job_id,
        "generation_b": item.generation_b_id, "job_b": item.generation_b.job_id if item.generation_b_id else None,
        "annotator_id": assignment.annotator_id, "assignment": assignment.pk,
        "left_generation": shown[0], "right_generation": shown[1],
        "version": judgment.version, "latest": latest, "time_ms": judgment.time_ms,
        "claimed_at": assignment.claimed_at.isoformat(), "submitted_at": judgment.created_at.isoformat(),
        "answer": judgment.answer,
    }


def judgments_jsonl(campaign: Campaign) -> Iterator[str]:
    for record in judgment_records(campaign):
        yield json.dumps(record, ensure_ascii=False) + "\n"


def judgment_rows(campaign: Campaign) -> Iterator[list]:
    questions = [question.name for question in campaign_questions(campaign)]
    yield BASE_COLUMNS + [f"answer_{name}" for name in questions]
    for record in judgment_records(campaign):
        yield [record[column] for column in BASE_COLUMNS] + [record["answer"].get(name) for name in questions]


def judgments_csv(campaign: Campaign) -> Iterator[str]:
    return to_csv(judgment_rows(campaign))
