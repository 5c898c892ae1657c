"""Scorer-trust API: training runs, scorer evaluations, imported scores (Researcher role) and
the judge leaderboard (any signed-in user). ApplicationError -> 400 {"message", "extra"}."""
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from evaluation.scorer_trust import imports, scorer_evaluation, selectors, training
from evaluation.scorer_trust.agreement_table import json_results
from evaluation.scorer_trust.labels import DEFAULT_RULE
from evaluation.scorer_trust.models import (
    ImportedScoreSet,
    ScorerEvaluation,
    TrainingRun,
)
from evaluation.scorers import encoders
from toxplatform.accounts.permissions import RESEARCHER_API
from toxplatform.corpus.api import APPLICATION_ERROR_SCHEMA
from toxplatform.corpus.models import Language

RUN_FIELDS = ["id", "status", "stage", "done", "total", "percent", "error", "created_at", "started_at", "finished_at"]


class TrainingRunSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    scorer_key = serializers.CharField(read_only=True)
    percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = TrainingRun
        fields = RUN_FIELDS + ["name", "scorer_key", "dataset", "languages", "categories", "label_source",
                               "aggregate_rule", "encoder", "encoder_fingerprint", "params", "report", "results",
                               "artifact_path", "artifact_sha256"]


class TrainingCreateSerializer(serializers.Serializer):
    dataset = serializers.CharField(default="rtp-lx", max_length=100)
    languages = serializers.ListField(child=serializers.CharField(max_length=35), default=list, max_length=200)
    categories = serializers.ListField(child=serializers.CharField(max_length=50), default=list, max_length=50)
    name = serializers.CharField(default="", allow_blank=True, max_length=100)
    encoder = serializers.CharField(default=encoders.DEFAULT_ENCODER, max_length=1000)
    params = serializers.DictField(default=dict)
    aggregate_rule = serializers.CharField(default=DEFAULT_RULE, max_length=50)


class ScorerEvaluationSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    percent = serializers.IntegerField(read_only=True)
    summary = serializers.SerializerMethodField()

    class Meta:
        model = ScorerEvaluation
        fields = RUN_FIELDS + ["source", "scorer_key", "scorer_name", "scorer_params", "dataset", "languages",
                               "categories", "aggregate_rule", "mapping_rule", "measures", "bootstrap", "seed",
                               "excluded_prompts", "summary"]

    def get_summary(self, evaluation) -> dict | None:
        return (evaluation.notes or {}).get("summary")


class EvaluationCreateSerializer(serializers.Serializer):
    scorer = serializers.JSONField(required=False, help_text='a name or {"name": ..., "params": {...}}')
    imported = serializers.CharField(required=False, max_length=100)
    dataset = serializers.CharField(default="rtp-lx", max_length=100)
    languages = serializers.ListField(child=serializers.CharField(max_length=35), default=list, max_length=200)
    categories = serializers.ListField(child=serializers.CharField(max_length=50), default=list, max_length=50)
    aggregate_rule = serializers.CharField(default=DEFAULT_RULE, max_length=50)
    bootstrap = serializers.IntegerField(default=1000, min_value=0, max_value=10000)
    seed = serializers.IntegerField(default=0)


class ImportedScoreSetSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    scorer_key = serializers.CharField(read_only=True)

    class Meta:
        model = ImportedScoreSet
        fields = ["id", "name", "scorer_key", "dataset", "file_name", "sha256", "lines", "measures", "created_at"]


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    scorer_name = serializers.CharField(max_length=80)
    dataset = serializers.CharField(default="rtp-lx", max_length=100)
    replace = serializers.BooleanField(default=False)


class TrainingRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Training runs of the trained scorer; POST queues one (every input checked first)."""

    permission_classes = RESEARCHER_API
    serializer_class = TrainingRunSerializer

    def get_queryset(self):
        return selectors.training_runs()

    @extend_schema(request=TrainingCreateSerializer, responses={201: TrainingRunSerializer, 400: APPLICATION_ERROR_SCHEMA})
    def create(self, request):
        data = TrainingCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = training.create_training_run(**data.validated_data, user=request.user)
        return Response(TrainingRunSerializer(run).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = training.cancel_training_run(get_object_or_404(TrainingRun, pk=pk).pk)
        return Response(TrainingRunSerializer(run).data)


class ScorerEvaluationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Scorer evaluations against gold labels; GET .../<id>/results/ gives evaluate_scorer --json's shape."""

    permission_classes = RESEARCHER_API
    serializer_class = ScorerEvaluationSerializer

    def get_queryset(self):
        return selectors.scorer_evaluations()

    @extend_schema(request=EvaluationCreateSerializer,
                   responses={201: ScorerEvaluationSerializer, 400: APPLICATION_ERROR_SCHEMA})
    def create(self, request):
        data = EvaluationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        evaluation = scorer_evaluation.create_scorer_evaluation(**data.validated_data, user=request.user)
        return Response(ScorerEvaluationSerializer(evaluation).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["get"])
    def results(self, request, pk=None):
        evaluation = self.get_object()
        return Response({"aggregate_rule": evaluation.aggregate_rule, "mapping_rule": evaluation.mapping_rule,
                         **json_results(selectors.evaluation_rows(evaluation))})

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        evaluation = scorer_evaluation.cancel_scorer_evaluation(self.get_object().pk)
        return Response(ScorerEvaluationSerializer(evaluation).data)


class ImportedScoreSetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """External scores; POST a multipart upload (file, scorer_name, dataset, replace)."""

    permission_classes = RESEARCHER_API
    serializer_class = ImportedScoreSetSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_queryset(self):
        return selectors.imported_sets()

    @extend_schema(request=ImportUploadSerializer, responses={201: ImportedScoreSetSerializer, 400: APPLICATION_ERROR_SCHEMA})
    def create(self, request):
        data = ImportUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        score_set = imports.import_scores_upload(
            data.validated_data["file"], name=data.validated_data["scorer_name"],
            dataset=data.validated_data["dataset"], replace=data.validated_data["replace"], user=request.user,
        )
        return Response(ImportedScoreSetSerializer(score_set).data, status=status.HTTP_201_CREATED)


class JudgeLeaderboardViewSet(viewsets.ViewSet):
    """The judge leaderboard: GET /api/judges/?category=toxicity (overview), /api/judges/<code>/."""

    permission_classes = [IsAuthenticated]

    @staticmethod
    def _cell(cell) -> dict:
        return {"scorer": cell.scorer, "weighted_kappa": cell.kappa, "ci_low": cell.ci_low, "ci_high": cell.ci_high,
                "n": cell.n, "human_ceiling": cell.human_ceiling, "band": cell.band, "source": cell.source}

    @staticmethod
    def _recommendation(rec) -> dict:
        return {"scorer": rec.best.scorer if rec.good else None, "good": rec.good, "message": rec.message}

    @extend_schema(operation_id="judges_list", responses=OpenApiTypes.OBJECT,
                   parameters=[OpenApiParameter("category", str, description="harm category slug")])
    def list(self, request):
        board = selectors.overview(request.query_params.get("category", selectors.HEADLINE_CATEGORY))
        return Response({
            "category": board.category, "aggregate_rule": selectors.DEFAULT_RULE, "means": board.means,
            "languages": [{"language": row.language.code, "human_ceiling": row.human_ceiling,
                           "recommendation": self._recommendation(row.recommendation),
                           "scorers": [self._cell(cell) for cell in row.cells.values()]} for row in board.rows],
        })

    @extend_schema(operation_id="judges_language", responses=OpenApiTypes.OBJECT,
                   parameters=[OpenApiParameter("id", str, OpenApiParameter.PATH, description="language code")])
    def retrieve(self, request, pk=None):
        language = get_object_or_404(Language, code=pk)
        board = selectors.language_board(language.code)
        return Response({
            "language": language.code, "aggregate_rule": selectors.DEFAULT_RULE,
            "categories": [{"category": b.category.slug, "human_ceiling": b.human_ceiling,
                            "recommendation": self._recommendation(b.recommendation),
                            "scorers": [self._cell(cell) for cell in b.cells]} for b in board.boards],
        })


def register(router) -> None:
    router.register("training-runs", TrainingRunViewSet, basename="training-run")
    router.register("scorer-evaluations", ScorerEvaluationViewSet, basename="scorer-evaluation")
    router.register("imported-scores", ImportedScoreSetViewSet, basename="imported-scores")
    router.register("judges", JudgeLeaderboardViewSet, basename="judges")
