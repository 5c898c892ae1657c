"""Scorer-trust pages: judge leaderboards (anyone signed in), training runs, scorer
evaluations and imported scores (researchers). Thin: services and selectors do the work."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from evaluation.scorer_trust import charts, imports, scorer_evaluation, selectors, training
from evaluation.scorer_trust.agreement_table import MAPPING_DESCRIPTION
from evaluation.scorer_trust.forms import EvaluationForm, ImportForm, TrainingForm
from evaluation.scorer_trust.labels import RULE_NAMES, rule_description
from evaluation.scorer_trust.models import ScorerEvaluation, TrainingRun
from toxplatform.accounts.models import Role
from toxplatform.accounts.permissions import role_required
from toxplatform.corpus.models import HarmCategory, Language

PAGE = 50


def _rule_context(rule: str) -> dict:
    return {"rule": rule, "rule_name": RULE_NAMES.get(rule, rule), "rule_description": rule_description(rule),
            "mapping_description": MAPPING_DESCRIPTION}


# --- judge leaderboards ----------------------------------------------------------------------
@login_required
def judges_overview(request):
    category = request.GET.get("category", selectors.HEADLINE_CATEGORY)
    if not HarmCategory.objects.filter(slug=category).exists():
        category = selectors.HEADLINE_CATEGORY
    board = selectors.overview(category)
    return render(request, "scorer_trust/judges_overview.html", {
        "board": board, "paper": selectors.PAPER_REFERENCE, "good_kappa": selectors.GOOD_KAPPA,
        **_rule_context(selectors.DEFAULT_RULE),
    })


@login_required
def judges_language(request, code: str):
    language = get_object_or_404(Language, code=code)
    board = selectors.language_board(language.code)
    charts_by_category = [(category_board, charts.bars(category_board.cells, category_board.human_ceiling))
                          for category_board in board.boards]
    return render(request, "scorer_trust/judges_language.html", {
        "board": board, "charts": charts_by_category, "paper": selectors.PAPER_REFERENCE,
        "good_kappa": selectors.GOOD_KAPPA, **_rule_context(selectors.DEFAULT_RULE),
    })


# --- training runs -----------------------------------------------------------------------------
@role_required(Role.RESEARCHER)
def training_list(request):
    form = TrainingForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        run = form.submit(training.create_training_run, user=request.user)
        if run is not None:
            messages.success(request, f"Training run {run.pk} ({run.scorer_key}) queued.")
            return redirect("scorer_trust:training-detail", run.pk)
    status = 400 if form.errors else 200
    return render(request, "scorer_trust/training_list.html",
                  {"runs": selectors.training_runs()[:PAGE], "form": form}, status=status)


@role_required(Role.RESEARCHER)
def training_detail(request, pk: int):
    run = get_object_or_404(TrainingRun.objects.select_related("dataset"), pk=pk)
    return render(request, "scorer_trust/training_detail.html",
                  {"run": run, "rows": run.results_all, **_rule_context(run.aggregate_rule)})


@role_required(Role.RESEARCHER)
@require_POST
def training_cancel(request, pk: int):
    run = training.cancel_training_run(get_object_or_404(TrainingRun, pk=pk).pk)
    messages.info(request, f"Training run {run.pk}: {run.status}.")
    return redirect("scorer_trust:training-detail", run.pk)


# --- scorer evaluations ------------------------------------------------------------------------
@role_required(Role.RESEARCHER)
def evaluation_list(request):
    form = EvaluationForm(request.POST or None,
                          initial={"scorer": request.GET.get("scorer", ""), "imported": request.GET.get("imported", "")})
    if request.method == "POST" and form.is_valid():
        evaluation = form.submit(scorer_evaluation.create_scorer_evaluation, user=request.user)
        if evaluation is not None:
            messages.success(request, f"Scorer evaluation {evaluation.pk} ({evaluation.scorer_key}) queued.")
            return redirect("scorer_trust:evaluation-detail", evaluation.pk)
    status = 400 if form.errors else 200
    return render(request, "scorer_trust/evaluation_list.html",
                  {"evaluations": selectors.scorer_evaluations()[:PAGE], "form": form}, status=status)


@role_required(Role.RESEARCHER)
def evaluation_detail(request, pk: int):
    evaluation = get_object_or_404(ScorerEvaluation.objects.select_related("dataset", "imported"), pk=pk)
    rows = selectors.evaluation_rows(evaluation)
    return render(request, "scorer_trust/evaluation_detail.html",
                  {"evaluation": evaluation, "rows": rows, **_rule_context(evaluation.aggregate_rule)})


@role_required(Role.RESEARCHER)
@require_POST
def evaluation_cancel(request, pk: int):
    evaluation = scorer_evaluation.cancel_scorer_evaluation(get_object_or_404(ScorerEvaluation, pk=pk).pk)
    messages.info(request, f"Scorer evaluation {evaluation.pk}: {evaluation.status}.")
    return redirect("scorer_trust:evaluation-detail", evaluation.pk)


@role_required(Role.RESEARCHER)
def run_progress(request, kind: str, pk: int):
    model = TrainingRun if kind == "training" else ScorerEvaluation
    run = get_object_or_404(model, pk=pk)
    return JsonResponse({"status": run.status, "stage": run.stage, "done": run.done, "total": run.total,
                         "percent": run.percent, "error": run.error})


# --- imported scores -------------------------------------------------------------------------
@role_required(Role.RESEARCHER)
def import_list(request):
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        score_set = form.submit(imports.import_scores_upload, user=request.user)
        if score_set is not None:
            messages.success(request, f"Imported {score_set.lines} lines as {score_set.scorer_key}.")
            return redirect(f"{_url('scorer_trust:evaluation-list')}?imported={score_set.name}")
    status = 400 if form.errors else 200
    return render(request, "scorer_trust/import_list.html",
                  {"sets": selectors.imported_sets(), "form": form}, status=status)


def _url(name: str) -> str:
    from django.urls import reverse

    return reverse(name)
