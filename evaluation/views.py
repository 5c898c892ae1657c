"""Evaluation pages: jobs and leaderboards (researchers; leaderboards public if an operator says so). Thin: the work is
in services/, selectors.py, results.py and leaderboards.py."""
from dataclasses import replace

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from evaluation import (
    catalog,
    charts,
    comparison,
    exports,
    leaderboards,
    results,
    selectors,
    services,
    workers,
)
from evaluation.forms import JobForm
from evaluation.models import EvaluationJob
from evaluation.serializers import JobProgressSerializer
from toxplatform.accounts.models import Role
from toxplatform.accounts.permissions import is_owner_or_admin, leaderboard_access, role_required
from toxplatform.corpus.models import HarmCategory, Language
from toxplatform.errors import ApplicationError
from toxplatform.middleware import plain_text_errors
from toxplatform.validation import parse_id

# --- leaderboards -----------------------------------------------------------------------------


def _heatmap_metric(request) -> leaderboards.MetricColumn:
    name = request.GET.get("metric", leaderboards.EMT.metric)
    for column in leaderboards.HEATMAP_METRICS:
        if column.metric == name:
            return column
    known = ", ".join(column.metric for column in leaderboards.HEATMAP_METRICS)
    raise ApplicationError("This metric has no heatmap.", {"metric": name, "known": known})


def _render_leaderboard(request, template: str, build, context: dict):
    """Render a leaderboard page; a filter value that names nothing raises ApplicationError,
    which the error middleware shows as a 400 naming it."""
    selection = leaderboards.selection_from_query(request.GET)
    context |= {"selection": selection, "options": leaderboards.filter_options(selection),
                "few_prompts": leaderboards.FEW_PROMPTS}
    context |= build(selection)
    return render(request, template, context)


@leaderboard_access
def leaderboard_list(request):
    """Overview: heatmap language × model·method, with links to each language and category."""

    def build(selection):
        metric = _heatmap_metric(request)
        return {
            "metric": metric,
            "heatmap_metrics": leaderboards.HEATMAP_METRICS,
            "heatmap": leaderboards.heatmap(selection=selection, metric=metric),
            "categories": leaderboards.category_summaries(selection),
            "legend": charts.heat_legend(),
        }

    return _render_leaderboard(request, "evaluation/leaderboard_list.html", build, {})


@leaderboard_access
def leaderboard_language(request, code: str):
    language = get_object_or_404(Language, code=code)

    def build(selection):
        board = leaderboards.language_leaderboard(language=language, selection=selection)
        emt = [(entry.label, entry.cells.get(leaderboards.EMT.metric, leaderboards.Cell())) for entry in board.entries]
        chart = charts.horizontal_bar_chart(
            [(label, cell.value, cell.ci_low, cell.ci_high) for label, cell in emt],
            title=f"EMT in {language.english_name} with 95% confidence intervals",
            maximum=1.0,
        )
        return {
            "board": board,
            "chart": chart,
            "languages": leaderboards.leaderboard_languages(selection),
        }

    return _render_leaderboard(request, "evaluation/leaderboard_language.html", build, {"language": language})


@plain_text_errors
@leaderboard_access
def leaderboard_language_csv(request, code: str):
    """The language leaderboard with the same filters, as CSV."""
    language = get_object_or_404(Language, code=code)
    board = leaderboards.language_leaderboard(language=language, selection=leaderboards.selection_from_query(request.GET))
    return _download(exports.to_csv(exports.leaderboard_rows(board)), "text/csv", f"leaderboard-{language.code}.csv")


@leaderboard_access
def leaderboard_category(request, slug: str):
    category = get_object_or_404(HarmCategory, slug=slug)

    def build(selection):
        # The category comes from the path; a category with no results yet is an empty page, not an error.
        selection = replace(selection, category=category.slug)
        metric = _heatmap_metric(request)
        return {
            "selection": selection,
            "metric": metric,
            "heatmap_metrics": leaderboards.HEATMAP_METRICS,
            "heatmap": leaderboards.heatmap(selection=selection, metric=metric),
            "legend": charts.heat_legend(),
        }

    return _render_leaderboard(request, "evaluation/leaderboard_category.html", build, {"category": category})


# --- jobs (researchers) ------------------------------------------------------------------------

JOBS_PER_PAGE = 50
RESEARCHER = role_required(Role.RESEARCHER)


@RESEARCHER
def job_list(request):
    """Every job, newest first; filters: status, owner (mine), model. Other people's
    cancelled jobs are hidden unless the status filter asks for cancelled ones."""
    status, owner, model = (request.GET.get(name, "") for name in ("status", "owner", "model"))
    problems = {}
    if status and status not in EvaluationJob.Status.values:
        problems["status"] = f"must be one of {', '.join(EvaluationJob.Status.values)} (got {status!r})"
    if owner not in ("", "mine"):
        problems["owner"] = f"must be mine or empty (got {owner!r})"
    if problems:
        raise ApplicationError("Unknown filter value", problems)
    jobs = selectors.job_list(
        user=request.user if owner == "mine" else None, status=status or None, model=model or None,
        hide_cancelled_of_others=None if status else request.user,
    )
    page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    report = workers.queue_report()
    rows = [(job, _list_progress(job), workers.missing_workers(job, report)) for job in page.object_list]
    filters = {"status": status, "owner": owner, "model": model, "statuses": EvaluationJob.Status.values,
               "models": selectors.job_list_models()}
    return render(request, "evaluation/job_list.html", {"page": page, "rows": rows, "filters": filters})


def _list_progress(job: EvaluationJob) -> selectors.JobProgress:
    """Progress from the row's own counters: the list needs no query per job (no chunk counts)."""
    return selectors.JobProgress(
        status=job.status,
        total_prompts=job.total_prompts,
        generated_prompts=job.generated_prompts,
        scored_prompts=job.scored_prompts,
        k=job.k,
    )


@RESEARCHER
def job_create(request):
    """The job form; ?from=<job id> fills it with that job's parameters (run again, with changes)."""
    source, left_out = None, []
    if request.method != "POST" and request.GET.get("from"):
        source = get_object_or_404(EvaluationJob.objects.select_related("model", "dataset"),
                                   pk=_int_or_404(request.GET["from"]))
        initial, left_out = JobForm.initial_from(source)
        form = JobForm(initial=initial)
    else:
        form = JobForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        job = form.submit(services.create_job, user=request.user)
        if job is not None:
            messages.success(request, f"Job {job.pk} was queued: {job.total_prompts:,} prompts × k={job.k}.")
            return redirect("evaluation:job-detail", pk=job.pk)
    status = 400 if form.errors else 200
    context = {"form": form, "source": source, "left_out": left_out, "size_data": catalog.form_data()}
    return render(request, "evaluation/job_form.html", context, status=status)


def _int_or_404(value: str) -> int:
    try:
        return parse_id(value)
    except ApplicationError:
        raise Http404("no such job") from None


@RESEARCHER
def job_detail(request, pk: int):
    job = get_object_or_404(EvaluationJob.objects.select_related("model", "dataset", "created_by"), pk=pk)
    subset = request.GET.get("subset", "all")
    if subset not in dict(leaderboards.SUBSETS):
        subset = "all"
    summary = results.job_summary(job)
    context = {
        "job": job,
        "summary": summary,
        "summary_chart": summary and charts.horizontal_bar_chart(
            summary.emt_bars(), title=f"EMT by language ({summary.scorer}, {summary.category_name}, all prompts) "
                                      "with 95% confidence intervals", maximum=1.0),
        "legend_columns": results.LEGEND_COLUMNS,
        "progress": selectors.job_progress(job),
        "missing_workers": workers.missing_workers(job, workers.queue_report()),
        "subset": subset,
        "subsets": leaderboards.SUBSETS,
        "results": results.job_results(job, subset=subset),
        "samples": results.generation_samples(job),
        "toxicity_columns": results.TOXICITY_COLUMNS,
    }
    return render(request, "evaluation/job_detail.html", context)


SAMPLES_PER_PAGE = 50


@RESEARCHER
def job_samples(request, pk: int):
    """Every sample of a job, by language; most toxic first under a chosen scorer and category."""
    job = get_object_or_404(EvaluationJob.objects.select_related("model", "dataset"), pk=pk)
    languages = selectors.job_languages(job)
    slices = selectors.job_score_slices(job)
    language = request.GET.get("language", "")
    order = request.GET.get("order", "toxic" if slices else "prompt")
    chosen = request.GET.get("slice", "")
    problems = {}
    if language and language not in languages:
        problems["language"] = f"this job has no prompts in {language!r}"
    if order not in ("toxic", "prompt"):
        problems["order"] = f"must be toxic or prompt (got {order!r})"
    by_value = {f"{scorer}|{category}": (scorer, category) for scorer, category in slices}
    if chosen and chosen not in by_value:
        problems["slice"] = f"this job has no scores for {chosen!r}"
    scorer, category = by_value.get(chosen) or (slices[0] if slices else ("", ""))
    context = {"job": job, "languages": languages, "slices": slices, "language": language, "order": order,
               "chosen": f"{scorer}|{category}", "raw": request.GET.get("view") == "raw"}
    if problems:
        raise ApplicationError("Unknown filter value", problems)
    generations = selectors.job_generations(
        job, language=language or None,
        **({"scorer": scorer, "category": category} if order == "toxic" and scorer else {}),
    )
    page = Paginator(generations, SAMPLES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "evaluation/job_samples.html", context | {"page": page})


COMPARE_CHOICES = 200  # newest finished jobs offered in the pickers (any job id works in the URL)


@RESEARCHER
def job_compare(request):
    """Job A against job B on their shared prompts: per-language differences with paired CIs."""
    params = request.GET
    jobs = selectors.done_jobs()
    context = {"choices": jobs[:COMPARE_CHOICES], "params": params, "rules": leaderboards.RULES,
               "metric_names": comparison.METRICS}
    a_id, b_id = params.get("a", ""), params.get("b", "")
    if not (a_id and b_id):
        return render(request, "evaluation/job_compare.html", context)
    a = get_object_or_404(jobs, pk=_int_or_404(a_id))
    b = get_object_or_404(jobs, pk=_int_or_404(b_id))
    scorers = comparison.common_scorers(a, b)
    scorer = params.get("scorer") or (scorers[0] if scorers else "")
    context |= {"a": a, "b": b, "scorers": scorers, "categories": comparison.common_categories(a, b, scorer)}
    context["comparison"] = comparison.compare_from_query(a, b, params)
    return render(request, "evaluation/job_compare.html", context)


@plain_text_errors
@RESEARCHER
def job_samples_download(request, pk: int):
    """Every sample of the job with its prompt and scores, as JSON Lines (streamed)."""
    job = get_object_or_404(EvaluationJob, pk=pk)
    language = request.GET.get("language") or None
    if language and not Language.objects.filter(code=language).exists():
        raise ApplicationError(f"unknown language code {language!r}", {"language": language})
    suffix = f"-{language}" if language else ""
    return _download(exports.samples_jsonl(job, language=language), "application/x-ndjson",
                     f"job-{job.pk}-samples{suffix}.jsonl")


@plain_text_errors
@RESEARCHER
def job_metrics_download(request, pk: int):
    """Every metric row of the job (all variants, subsets, CIs) as CSV."""
    job = get_object_or_404(EvaluationJob, pk=pk)
    return _download(exports.metrics_csv(job), "text/csv", f"job-{job.pk}-metrics.csv")


def _download(lines, content_type: str, filename: str) -> StreamingHttpResponse:
    # An attachment, never rendered as a page: the model's output is hostile text.
    response = StreamingHttpResponse(lines, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@RESEARCHER
def job_progress(request, pk: int):
    """What the job page polls every 2 s: counts from the database."""
    job = get_object_or_404(EvaluationJob, pk=pk)
    data = JobProgressSerializer(selectors.job_progress(job)).data
    missing = workers.missing_workers(job, workers.queue_report())
    data["workers_missing"] = missing.queue_names if missing else []
    return JsonResponse(data)


@RESEARCHER
@require_POST
def job_cancel(request, pk: int):
    job = get_object_or_404(EvaluationJob, pk=pk)
    if not is_owner_or_admin(request.user, job.created_by_id):
        raise PermissionDenied("Only the researcher who queued this job, or an admin, can cancel it.")
    try:
        services.cancel_job(job)
    except ApplicationError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Job {job.pk} was cancelled.")
    return _back(request, job)


@RESEARCHER
@require_POST
def job_resume(request, pk: int):
    """Queue again what a lost broker message, a dead worker or a failure left undone."""
    job = get_object_or_404(EvaluationJob, pk=pk)
    if not is_owner_or_admin(request.user, job.created_by_id):
        raise PermissionDenied("Only the researcher who queued this job, or an admin, can resume it.")
    try:
        sent = services.resume_job(job, by=request.user.get_username())
    except ApplicationError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Job {job.pk} was resumed: {len(sent)} chunk(s) queued again.")
    return _back(request, job)


def _back(request, job):
    # The job list's cancel buttons come back to the list (only to a page of this site).
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(back)
    return redirect("evaluation:job-detail", pk=job.pk)
