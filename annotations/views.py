"""Annotation pages. Annotators: their campaigns, the one-item workspace, preferences.
Researchers: campaigns, the dashboard, exports. Thin: the rules are in services/, reads in
selectors.py, numbers in reports.py.

An annotator asking for an item that is not theirs gets 404 (not 403): nothing says it exists."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from annotations import exports, reports, selectors, services
from annotations.forms import CampaignForm, EnrollForm, PreferencesForm
from annotations.models import Assignment, Campaign
from toxplatform.accounts.models import AnnotatorProfile, Role
from toxplatform.accounts.permissions import has_any_role, role_required
from toxplatform.accounts.services import set_annotator_preferences
from toxplatform.errors import ApplicationError

ANNOTATOR = role_required(Role.ANNOTATOR)
RESEARCHER = role_required(Role.RESEARCHER)


@login_required
def index(request):
    is_researcher = has_any_role(request.user, (Role.RESEARCHER,))
    is_annotator = has_any_role(request.user, (Role.ANNOTATOR,))
    if not (is_researcher or is_annotator):
        raise PermissionDenied("This page needs the role: Annotator or Researcher.")
    return render(request, "annotations/index.html", {
        "mine": selectors.annotator_campaigns(request.user) if is_annotator else [],
        "campaigns": selectors.campaign_list() if is_researcher else None,
        "is_annotator": is_annotator,
    })


# --- annotators ------------------------------------------------------------------------------------


def _enrolled(request, pk: int) -> Campaign:
    try:
        return services.assignment.enrolled_campaign(pk, request.user)
    except services.NotFound:
        raise Http404("No such campaign in your queue.") from None


def _own(request, pk: int) -> Assignment:
    try:
        return services.own_assignment(pk, request.user)
    except services.NotFound:
        raise Http404("No such item in your queue.") from None


@ANNOTATOR
def work(request, pk: int):
    """Hand out the next item (or the one already held) and show it here: no redirect, one
    request per item (a reload shows the same held item)."""
    try:  # next_assignment checks the enrollment itself
        claim = services.next_assignment(campaign=Campaign(pk=pk), annotator=request.user)
    except services.NotFound:
        raise Http404("No such campaign in your queue.") from None
    if claim.assignment is not None:
        return _render_item(request, claim.assignment)
    campaign = _enrolled(request, pk)
    return render(request, "annotations/queue_empty.html", {
        "campaign": campaign, "reason": claim.reason, "progress": selectors.progress(campaign, request.user),
    })


def _render_item(request, assignment: Assignment, *, error=None, status=200):
    return render(request, "annotations/workspace.html",
                  {"w": selectors.workspace(assignment), "error": error}, status=status)


@ANNOTATOR
def item(request, pk: int):
    assignment = _own(request, pk)
    if assignment.state == Assignment.State.SKIPPED:
        messages.info(request, "You skipped that item (press u on the next one to take the skip back).")
        return redirect("annotations:work", assignment.item.campaign_id)
    return _render_item(request, assignment)


@ANNOTATOR
@require_POST
def answer(request, pk: int):
    assignment = _own(request, pk)
    try:
        services.submit_judgment(assignment_id=pk, annotator=request.user, data=request.POST,
                                 time_ms=request.POST.get("time_ms"))
    except services.NotFound:
        raise Http404("No such item in your queue.") from None
    except ApplicationError as error:
        return _render_item(request, assignment, error=error, status=400)
    return redirect("annotations:work", assignment.item.campaign_id)


@ANNOTATOR
@require_POST
def skip(request, pk: int):
    assignment = _own(request, pk)
    try:
        services.skip(assignment_id=pk, annotator=request.user, reason=request.POST.get("reason", ""),
                      note=request.POST.get("note", ""))
    except ApplicationError as error:
        return _render_item(request, assignment, error=error, status=400)
    return redirect("annotations:work", assignment.item.campaign_id)


@ANNOTATOR
@require_POST
def undo(request, pk: int):
    campaign = _enrolled(request, pk)
    try:
        last = services.undo_last(campaign=campaign, annotator=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("annotations:work", campaign.pk)
    if last is None:
        messages.info(request, "Nothing to undo yet.")
        return redirect("annotations:work", campaign.pk)
    return redirect("annotations:item", last.pk)


@ANNOTATOR
def preferences(request):
    profile, _ = AnnotatorProfile.objects.get_or_create(user=request.user)
    if request.method == "POST":
        form = PreferencesForm(request.POST)
        if form.is_valid():
            cap = form.cleaned_data["daily_cap"]
            set_annotator_preferences(user=request.user, opted_out=[c.slug for c in form.cleaned_data["opted_out"]],
                                      daily_cap=cap, clear_cap=cap is None)
            messages.success(request, "Your preferences are saved.")
            return redirect("annotations:preferences")
    else:
        form = PreferencesForm(initial={"opted_out": list(profile.opted_out_categories.all()), "daily_cap": profile.daily_cap})
    return render(request, "annotations/preferences.html", {"form": form, "languages": profile.languages.all()})


# --- researchers -----------------------------------------------------------------------------------


@RESEARCHER
def campaign_create(request):
    form = CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        campaign = form.submit(services.create_campaign, created_by=request.user)
        if campaign is not None:
            messages.success(request, f"Campaign created with {campaign.items.count()} items.")
            return redirect("annotations:campaign-detail", campaign.pk)
    status = 400 if form.errors else 200
    return render(request, "annotations/campaign_form.html", {"form": form}, status=status)


@RESEARCHER
def campaign_detail(request, pk: int):
    campaign = get_object_or_404(Campaign.objects.prefetch_related("jobs__model", "languages", "categories", "annotators"), pk=pk)
    report = reports.cached_campaign_report(campaign)
    return render(request, "annotations/campaign_detail.html", {
        "campaign": campaign,
        "languages": selectors.language_progress(campaign),
        "annotators": selectors.annotator_progress(campaign),
        "report": report,
        "alpha_chart": reports.alpha_chart(report),
        "position_rows": reports.position_rows(report),
        "enroll_form": EnrollForm(),
    })


@RESEARCHER
@require_POST
def campaign_enroll(request, pk: int):
    campaign = get_object_or_404(Campaign, pk=pk)
    form = EnrollForm(request.POST)
    if form.is_valid():
        try:
            users = services.enroll(campaign=campaign, usernames=form.cleaned_data["usernames"])
        except ApplicationError as error:
            messages.error(request, str(error))
        else:
            messages.success(request, f"Enrolled: {', '.join(user.username for user in users)}.")
    else:
        messages.error(request, "Name at least one annotator.")
    return redirect("annotations:campaign-detail", campaign.pk)


@RESEARCHER
@require_POST
def campaign_status(request, pk: int):
    campaign = get_object_or_404(Campaign, pk=pk)
    try:
        services.set_status(campaign=campaign, status=request.POST.get("status", ""))
    except ApplicationError as error:
        messages.error(request, str(error))
    return redirect("annotations:campaign-detail", campaign.pk)


def _download(content, content_type: str, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(content, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@RESEARCHER
def campaign_export_jsonl(request, pk: int):
    campaign = get_object_or_404(Campaign, pk=pk)
    return _download(exports.judgments_jsonl(campaign), "application/x-ndjson", f"campaign-{campaign.pk}-judgments.jsonl")


@RESEARCHER
def campaign_export_csv(request, pk: int):
    campaign = get_object_or_404(Campaign, pk=pk)
    return _download(exports.judgments_csv(campaign), "text/csv", f"campaign-{campaign.pk}-judgments.csv")
