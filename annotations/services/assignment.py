"""Handing out items and taking judgments, safe under concurrency.

Rules (each enforced where it can be checked exactly):
- An item gets at most `overlap` finished judgments: a claim needs done + live reservations
  < overlap, and a first judgment needs done < overlap, both counted under the item's row lock.
- No annotator gets an item twice: the unique (item, annotator) Assignment, also checked
  under the lock.
- A reservation expires after the campaign's `reservation_minutes`; an expired one no longer
  holds a slot (the item is back in the pool). Its owner may still submit while the item has room.
- Skips keep their reason and never count toward the overlap.
- A claim locks the annotator's profile row first: two tabs of one person are served one
  after the other, so the day cap holds.

PostgreSQL: candidates are locked with SELECT ... FOR UPDATE SKIP LOCKED (annotators do not
wait for each other's items) and rechecked with fresh counts once locked; only when every
candidate is locked at that instant does a claim wait for the first one (else "nothing left"
would be reported while items still have room). SQLite has neither
row locks nor SKIP LOCKED: every claim and submit starts with a write to the campaign row, which
takes SQLite's database write lock at once (BEGIN IMMEDIATE in effect), so they run one at a
time and the same rechecks are exact.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotations import kinds
from annotations.kinds.base import SKIP_REASON_VALUES
from annotations.models import Assignment, Campaign, Item, Judgment
from toxplatform.accounts.models import AnnotatorProfile
from toxplatform.errors import ApplicationError

# Candidates tried per claim before giving up (each failed recheck means someone else won it).
CLAIM_ATTEMPTS = 20
MAX_TIME_MS = 6 * 60 * 60 * 1000

_swap = random.SystemRandom()


class NotFound(ApplicationError):
    """The item is not in this annotator's queue (pages answer 404, never 403: no hint it exists)."""


@dataclass(frozen=True)
class Claim:
    assignment: Assignment | None
    # Why there is none: "cap" (day cap reached) or "empty" (nothing left for this annotator).
    reason: str = ""


def _serialize_on_sqlite(campaign_id: int) -> None:
    if connection.vendor == "sqlite":
        Campaign.objects.filter(pk=campaign_id).update(status=F("status"))


def start_of_day(now: datetime) -> datetime:
    return timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)


def day_caps(campaign: Campaign, profile: AnnotatorProfile | None) -> list[tuple[int, Q]]:
    """(cap, which assignments count) pairs: the campaign's cap counts its own items, the
    annotator's own cap counts every campaign's."""
    caps = [(campaign.daily_cap, Q(item__campaign=campaign))]
    if profile is not None and profile.daily_cap:
        caps.append((profile.daily_cap, Q()))
    return caps


def items_today(annotator, now: datetime, where: Q = Q()) -> int:
    return Assignment.objects.filter(where, annotator=annotator, claimed_at__gte=start_of_day(now)).count()


def live_reservations(now: datetime):
    return Assignment.objects.filter(item=OuterRef("pk"), state=Assignment.State.RESERVED, expires_at__gt=now)


def eligible_items(campaign: Campaign, annotator, profile: AnnotatorProfile | None, now: datetime):
    """Items this annotator may be handed now (before the recheck under lock): their
    languages, not an opted-out category, not seen before, with a free slot."""
    languages = profile.languages.values("code") if profile else []
    opted_out = profile.opted_out_categories.values("slug") if profile else []
    items = (
        Item.objects.filter(campaign=campaign, language__in=languages, done_count__lt=campaign.overlap)
        .exclude(harm_categories__in=opted_out)
        .exclude(Exists(Assignment.objects.filter(item=OuterRef("pk"), annotator=annotator)))
    )
    # A slot is free when done + live reservations < overlap (rechecked once the row is locked).
    held = Subquery(live_reservations(now).order_by().values("item").annotate(n=Count("id")).values("n"))
    return items.annotate(held=Coalesce(held, Value(0))).filter(done_count__lt=campaign.overlap - F("held"))


def _has_room(item: Item, campaign: Campaign, annotator, now: datetime) -> bool:
    """Exact, with the item's row locked: not seen by this annotator, done + live < overlap."""
    counts = Assignment.objects.filter(item=item).aggregate(
        mine=Count("id", filter=Q(annotator=annotator)),
        done=Count("id", filter=Q(state=Assignment.State.DONE)),
        held=Count("id", filter=Q(state=Assignment.State.RESERVED, expires_at__gt=now)),
    )
    return not counts["mine"] and counts["done"] + counts["held"] < campaign.overlap


def enrolled_campaign(campaign_id: int, annotator) -> Campaign:
    campaign = Campaign.objects.filter(pk=campaign_id, annotators=annotator).first()
    if campaign is None:
        raise NotFound("You are not enrolled in this campaign.", {"campaign": campaign_id})
    return campaign


def next_assignment(*, campaign: Campaign, annotator, now: datetime | None = None) -> Claim:
    """The annotator's live reservation in this campaign, or a newly claimed item."""
    now = now or timezone.now()
    campaign = enrolled_campaign(campaign.pk, annotator)
    if campaign.status != Campaign.Status.ACTIVE:
        return Claim(None, "closed")
    with transaction.atomic():
        _serialize_on_sqlite(campaign.pk)
        # One claim per annotator at a time (row lock): the day cap and "one live item" hold.
        profile = AnnotatorProfile.objects.select_for_update().filter(user=annotator).first()
        if profile is None:  # a user made without a profile (no languages: nothing to hand out)
            profile, _ = AnnotatorProfile.objects.get_or_create(user=annotator)
        current = (
            Assignment.objects.filter(item__campaign=campaign, annotator=annotator, state=Assignment.State.RESERVED,
                                      expires_at__gt=now)
            .select_related("item").order_by("claimed_at").first()
        )
        if current is not None:
            return Claim(current)
        for cap, where in day_caps(campaign, profile):
            if items_today(annotator, now, where) >= cap:
                return Claim(None, "cap")
        tried: list[int] = []
        for _ in range(CLAIM_ATTEMPTS):
            # Each try in a savepoint: a candidate that fails the recheck is unlocked again at
            # once, so a claim never holds one item while it waits for another (no deadlock).
            savepoint = transaction.savepoint()
            candidates = eligible_items(campaign, annotator, profile, now).exclude(pk__in=tried).order_by("-priority", "id")
            item = next(iter(candidates.select_for_update(skip_locked=True, of=("self",))[:1]), None)
            if item is None:
                # Every candidate is locked this instant (being claimed or answered by someone
                # else): wait for the first instead of reporting an empty queue that is not.
                item = next(iter(candidates.select_for_update(of=("self",))[:1]), None)
            if item is None:
                transaction.savepoint_commit(savepoint)
                return Claim(None, "empty")
            if not _has_room(item, campaign, annotator, now):
                transaction.savepoint_rollback(savepoint)
                tried.append(item.pk)
                continue
            assignment = Assignment.objects.create(
                item=item, annotator=annotator, claimed_at=now,
                expires_at=now + timedelta(minutes=campaign.reservation_minutes),
                swapped=item.generation_b_id is not None and _swap.random() < 0.5,
            )
            transaction.savepoint_commit(savepoint)
            return Claim(assignment)
    return Claim(None, "empty")


def own_assignment(assignment_id, annotator, *, lock: bool = False) -> Assignment:
    rows = Assignment.objects.filter(pk=assignment_id, annotator=annotator, item__campaign__annotators=annotator)
    if lock:
        rows = rows.select_for_update(of=("self",))
    try:
        return rows.select_related("item__campaign").get()
    except (Assignment.DoesNotExist, ValueError, TypeError):
        raise NotFound("This item is not in your queue.", {"assignment": str(assignment_id)[:20]}) from None


def _time_ms(value, assignment: Assignment, now: datetime) -> int:
    """The browser's measure of time on the item; the server's (since the claim) when absent."""
    try:
        ms = int(value)
    except (TypeError, ValueError):
        ms = int((now - assignment.claimed_at).total_seconds() * 1000)
    return max(0, min(ms, MAX_TIME_MS))


def order_shown(assignment: Assignment) -> list[int]:
    item = assignment.item
    if item.generation_b_id is None:
        return [item.generation_a_id]
    pair = [item.generation_a_id, item.generation_b_id]
    return pair[::-1] if assignment.swapped else pair


def submit_judgment(*, assignment_id, annotator, data: dict, time_ms=None, now: datetime | None = None) -> Judgment:
    """Record an answer. The first one finishes the assignment (if the item still has room);
    a later one is a new version of it (an edit; earlier versions stay)."""
    now = now or timezone.now()
    found = own_assignment(assignment_id, annotator)
    campaign = found.item.campaign
    with transaction.atomic():
        # On SQLite the first statement must be the write that takes the lock.
        _serialize_on_sqlite(campaign.pk)
        campaign.refresh_from_db()
        if campaign.status != Campaign.Status.ACTIVE:
            raise ApplicationError("This campaign is closed.", {"campaign": campaign.pk})
        # Lock order everywhere: item, then assignment.
        item = Item.objects.select_for_update().get(pk=found.item_id)
        assignment = own_assignment(assignment_id, annotator, lock=True)
        kind = kinds.get(campaign.kind)
        answer = kind.parse_answer(kind.questions(campaign, list(campaign.categories.all())), data,
                                   swapped=assignment.swapped)
        if assignment.state == Assignment.State.SKIPPED:
            raise ApplicationError("This item was skipped; undo the skip to answer it.")
        if assignment.state == Assignment.State.DONE:
            last = assignment.judgments.order_by("-version").values_list("version", flat=True).first() or 0
            return Judgment.objects.create(assignment=assignment, version=last + 1, answer=answer,
                                           order_shown=order_shown(assignment), time_ms=_time_ms(time_ms, assignment, now))
        done = Assignment.objects.filter(item=item, state=Assignment.State.DONE).count()
        if done >= campaign.overlap:
            raise ApplicationError("This item already has all the judgments it needs (your reservation had expired).",
                                   {"item": item.pk})
        judgment = Judgment.objects.create(assignment=assignment, version=1, answer=answer,
                                           order_shown=order_shown(assignment), time_ms=_time_ms(time_ms, assignment, now))
        Assignment.objects.filter(pk=assignment.pk).update(state=Assignment.State.DONE, finished_at=now)
        Item.objects.filter(pk=item.pk).update(done_count=done + 1)
        return judgment


def skip(*, assignment_id, annotator, reason: str, note: str = "", now: datetime | None = None) -> Assignment:
    now = now or timezone.now()
    if reason not in SKIP_REASON_VALUES:
        raise ApplicationError("Say why you skip this item.", {"reason": str(reason)[:30], "known": ", ".join(sorted(SKIP_REASON_VALUES))})
    campaign_id = own_assignment(assignment_id, annotator).item.campaign_id
    with transaction.atomic():
        _serialize_on_sqlite(campaign_id)
        assignment = own_assignment(assignment_id, annotator, lock=True)
        if assignment.state != Assignment.State.RESERVED:
            raise ApplicationError("Only an item you have not answered can be skipped.")
        Assignment.objects.filter(pk=assignment.pk).update(
            state=Assignment.State.SKIPPED, skip_reason=reason, skip_note=(note or "")[:500], finished_at=now
        )
    assignment.refresh_from_db()
    return assignment


def undo_last(*, campaign: Campaign, annotator, now: datetime | None = None) -> Assignment | None:
    """Go back to the annotator's last finished item in this campaign: a skip is taken back
    (the item is theirs again, if it still has room); an answer is reopened for an edit, which
    will add a version."""
    now = now or timezone.now()
    campaign = enrolled_campaign(campaign.pk, annotator)
    with transaction.atomic():
        _serialize_on_sqlite(campaign.pk)
        last = (
            Assignment.objects.filter(item__campaign=campaign, annotator=annotator, finished_at__isnull=False)
            .order_by("-finished_at", "-id").first()
        )
        if last is None:
            return None
        if last.state == Assignment.State.SKIPPED:
            item = Item.objects.select_for_update().get(pk=last.item_id)
            held = Assignment.objects.filter(item=item, state=Assignment.State.RESERVED, expires_at__gt=now).count()
            if item.done_count + held >= campaign.overlap:
                raise ApplicationError("That item has been taken by others since you skipped it.")
            Assignment.objects.filter(pk=last.pk).update(
                state=Assignment.State.RESERVED, skip_reason="", skip_note="", finished_at=None,
                expires_at=now + timedelta(minutes=campaign.reservation_minutes),
            )
            last.refresh_from_db()
        return last

