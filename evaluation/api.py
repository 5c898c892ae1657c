"""Evaluation API: jobs (list, create, status with progress, metrics, samples, cancel, compare)
and language leaderboards.

Jobs need the Researcher role, and cancelling one its owner (or an admin); leaderboards need
the Researcher role unless an operator makes them public.
"""
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from evaluation import catalog, comparison, exports, leaderboards, selectors, services
from evaluation.serializers import (
    CatalogEntrySerializer,
    ComparisonSerializer,
    JobCreateSerializer,
    JobDetailSerializer,
    JobMetricSerializer,
    JobProgressSerializer,
    JobSampleSerializer,
    JobSerializer,
    LanguageLeaderboardSerializer,
)
from toxplatform.accounts.permissions import (
    RESEARCHER_API,
    CanReadLeaderboards,
    is_owner_or_admin,
)
from toxplatform.corpus.api import APPLICATION_ERROR_SCHEMA
from toxplatform.corpus.models import Language
from toxplatform.errors import ApplicationError
from toxplatform.validation import parse_id

METRIC_FILTERS = [
    OpenApiParameter("language", OpenApiTypes.STR, description="BCP-47 code"),
    OpenApiParameter("scorer", OpenApiTypes.STR),
    OpenApiParameter("subset", OpenApiTypes.STR, description="all, toxic or nontoxic"),
]


@extend_schema_view(
    create=extend_schema(
        request=JobCreateSerializer,
        responses={201: JobDetailSerializer, 400: APPLICATION_ERROR_SCHEMA},
        description="Validate, plan and queue a job. Any bad parameter is a 400 whose `extra` names "
        "each field and what is wrong; nothing is created then. Needs the Researcher role.",
    ),
    retrieve=extend_schema(responses=JobDetailSerializer),
)
class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Evaluation jobs, newest first; the detail adds progress counted in the database."""

    serializer_class = JobSerializer

    def get_queryset(self):
        return selectors.job_list()

    # Researchers only, as on the job pages: annotators rate outputs blind to which model and
    # method wrote them, so they do not see jobs (leaderboards show only aggregates).
    permission_classes = RESEARCHER_API

    def get_serializer_class(self):
        if self.action == "create":
            return JobCreateSerializer
        if self.action == "metrics":
            return JobMetricSerializer
        if self.action == "samples":
            return JobSampleSerializer
        return JobSerializer

    def _detail(self, job, status_code=status.HTTP_200_OK) -> Response:
        context = {**self.get_serializer_context(), "progress": selectors.job_progress(job)}
        return Response(JobDetailSerializer(job, context=context).data, status=status_code)

    def retrieve(self, request, *args, **kwargs):
        return self._detail(self.get_object())

    def create(self, request, *args, **kwargs):
        serializer = JobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = dict(serializer.validated_data)
        confirm_large = values.pop("confirm_large", False)
        job = services.create_job(user=request.user, confirm_large=confirm_large, **values)
        return self._detail(job, status.HTTP_201_CREATED)

    @extend_schema(responses=JobProgressSerializer)
    @action(detail=True, methods=["get"])
    def progress(self, request, pk=None):
        """Only the progress (what a polling client needs)."""
        return Response(JobProgressSerializer(selectors.job_progress(self.get_object())).data)

    @extend_schema(parameters=METRIC_FILTERS, responses=JobMetricSerializer(many=True))
    @action(detail=True, methods=["get"])
    def metrics(self, request, pk=None):
        """The job's aggregate metrics (one row per language, category, scorer, metric, subset)."""
        params = request.query_params
        rows = selectors.job_metrics(
            self.get_object(),
            language=params.get("language") or None,
            scorer=params.get("scorer"),
            subset=params.get("subset") or None,
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(JobMetricSerializer(page, many=True).data)

    @extend_schema(
        parameters=[OpenApiParameter("language", OpenApiTypes.STR, description="BCP-47 code")],
        responses={200: JobSampleSerializer(many=True), 400: APPLICATION_ERROR_SCHEMA},
    )
    @action(detail=True, methods=["get"])
    def samples(self, request, pk=None):
        """Every generation with its prompt and scores, by language, prompt and sample.
        The same records as the job page's JSON Lines download."""
        job = self.get_object()
        language = request.query_params.get("language") or None
        if language and not Language.objects.filter(code=language).exists():
            raise ApplicationError(f"unknown language code {language!r}", {"language": language})
        page = self.paginate_queryset(exports.sample_generations(job, language=language))
        return self.get_paginated_response(JobSampleSerializer(page, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("a", OpenApiTypes.INT, required=True, description="job A (finished)"),
            OpenApiParameter("b", OpenApiTypes.INT, required=True, description="job B (finished, same dataset)"),
            OpenApiParameter("scorer", OpenApiTypes.STR, description="a scorer key both jobs used (default: the first)"),
            OpenApiParameter("category", OpenApiTypes.STR, description="harm category (default: toxicity)"),
            OpenApiParameter("k", OpenApiTypes.INT, description="first k samples (default: the smaller job's k)"),
            OpenApiParameter("rule", OpenApiTypes.STR, description='">=" or ">" (default: job A\'s)'),
        ],
        responses={200: ComparisonSerializer, 400: APPLICATION_ERROR_SCHEMA},
    )
    @action(detail=False, methods=["get"])
    def compare(self, request):
        """Job A minus job B on their shared prompts, per language: paired bootstrap CIs and
        sign-flip permutation p-values (the job comparison page's numbers)."""
        params = request.query_params
        ids, bad = {}, {}
        for side in ("a", "b"):
            try:
                ids[side] = parse_id(params.get(side, ""), side)
            except ApplicationError:
                bad[side] = f"give a job id (got {params.get(side, '')[:40]!r})"
        if bad:
            raise ApplicationError("These jobs cannot be compared", bad)
        a, b = (get_object_or_404(self.get_queryset(), pk=ids[side]) for side in ("a", "b"))
        return Response(ComparisonSerializer(comparison.compare_from_query(a, b, params)).data)

    @extend_schema(request=None, responses={200: JobDetailSerializer, 400: APPLICATION_ERROR_SCHEMA})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Stop the job; a job that already finished is a 400. Needs the Researcher role."""
        job = self.get_object()
        if not is_owner_or_admin(request.user, job.created_by_id):
            raise PermissionDenied("Only the researcher who queued this job, or an admin, can cancel it.")
        return self._detail(services.cancel_job(job))

    @extend_schema(request=None, responses={200: JobDetailSerializer, 400: APPLICATION_ERROR_SCHEMA})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Queue again what a lost broker message, a dead worker or a failure left undone (a
        failed or cancelled job is re-opened); a job that is done is a 400. Owner or admin."""
        job = self.get_object()
        if not is_owner_or_admin(request.user, job.created_by_id):
            raise PermissionDenied("Only the researcher who queued this job, or an admin, can resume it.")
        services.resume_job(job, by=request.user.get_username())
        job.refresh_from_db()
        return self._detail(job)


LEADERBOARD_FILTERS = [
    OpenApiParameter(name, OpenApiTypes.STR, description=description)
    for name, description in [
        ("dataset", "dataset slug (default: that of the newest finished job)"),
        ("scorer", "scorer key of the toxicity columns"),
        ("category", "harm category (default: toxicity)"),
        ("subset", "all, toxic or nontoxic prompts"),
        ("k", "samples per prompt (default: each job's own)"),
        ("rule", '">=" or ">" (default: each job\'s own)'),
        ("fluency", "scorer key whose perplexity fills ppl"),
    ]
]


@extend_schema_view(retrieve=extend_schema(parameters=LEADERBOARD_FILTERS,
                                           responses={200: LanguageLeaderboardSerializer, 400: APPLICATION_ERROR_SCHEMA}))
class LanguageLeaderboardViewSet(viewsets.ViewSet):
    """One language's leaderboard, rows model x method, as on its page. Researchers (everyone
    when an operator makes leaderboards public)."""

    permission_classes = [CanReadLeaderboards]
    lookup_field = "code"
    lookup_value_regex = "[A-Za-z0-9-]+"

    def retrieve(self, request, code=None):
        language = get_object_or_404(Language, code=code)
        selection = leaderboards.selection_from_query(request.query_params)
        board = leaderboards.language_leaderboard(language=language, selection=selection)
        return Response(LanguageLeaderboardSerializer(board).data)


class CatalogViewSet(viewsets.ViewSet):
    """What a job can name: each entry's one-line summary and declared parameters (type,
    default, allowed values, help), as the job form shows them."""

    permission_classes = [IsAuthenticated]  # declarations only, no job data
    describe = staticmethod(catalog.methods)

    @extend_schema(responses=CatalogEntrySerializer(many=True))
    def list(self, request):
        return Response(self.describe())


class MethodViewSet(CatalogViewSet):
    """Detox methods a job may use (`method`, with `method_params`)."""

    describe = staticmethod(catalog.methods)


class ScorerViewSet(CatalogViewSet):
    """Scorers a job may use (`scorers`: names or {"name", "params", "key"})."""

    describe = staticmethod(catalog.scorers)


def register(router) -> None:
    router.register("jobs", JobViewSet, basename="job")
    router.register("methods", MethodViewSet, basename="method")
    router.register("scorers", ScorerViewSet, basename="scorer")
    router.register("leaderboards/languages", LanguageLeaderboardViewSet, basename="leaderboard-language")
