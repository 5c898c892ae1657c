"""API representations of evaluation jobs, their progress and their metrics.

The create serializer's fields come from the job parameter schema (evaluation/job_parameters.py)
and check only the shape of the input (types); services.create_job checks the values (bounds,
known languages, model paths, method and scorer parameters) and its ApplicationError becomes
a 400 naming every bad field. Fields left out take the schema's defaults.
"""
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from evaluation import exports
from evaluation.job_parameters import JOB_PARAMETERS
from evaluation.models import EvaluationJob, JobMetric
from toxplatform.param_fields import serializer_field


class JobProgressSerializer(serializers.Serializer):
    """A selectors.JobProgress: counts from the database."""

    status = serializers.CharField()
    stage = serializers.CharField()
    percent = serializers.IntegerField()
    total_prompts = serializers.IntegerField()
    generated_prompts = serializers.IntegerField()
    scored_prompts = serializers.IntegerField()
    k = serializers.IntegerField()
    chunks = serializers.DictField(child=serializers.DictField(child=serializers.IntegerField()))
    error = serializers.CharField()
    terminal = serializers.SerializerMethodField()

    def get_terminal(self, progress) -> bool:
        return progress.status in EvaluationJob.TERMINAL


class JobSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    dataset = serializers.CharField(source="dataset.slug")
    created_by = serializers.CharField(source="created_by.get_username", default=None)

    class Meta:
        model = EvaluationJob
        fields = [
            "id", "name", "status", "model", "model_fingerprint", "detox_method", "detox_params", "detox_notes",
            "dataset", "languages", "categories", "prompt_split", "prompts_per_language", "seed",
            "k", "max_new_tokens", "top_p", "temperature", "batch_size", "chunk_size", "scorers",
            "toxic_threshold", "threshold_rule", "total_prompts", "generated_prompts", "scored_prompts",
            "cancel_requested", "error", "code_version", "created_by", "created_at", "started_at", "finished_at",
        ]
        read_only_fields = fields


class JobDetailSerializer(JobSerializer):
    progress = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "history", "progress"]
        read_only_fields = fields

    def get_progress(self, job) -> dict:
        return JobProgressSerializer(self.context["progress"]).data


class JobCreateSerializer(serializers.Serializer):
    """Every job parameter, typed as the schema declares it (fields added from JOB_PARAMETERS)."""


JobCreateSerializer._declared_fields.update(
    {param.name: serializer_field(param) for param in JOB_PARAMETERS}
)
# Not a job parameter: the author's go-ahead for a job above JOB_CONFIRM_WORK.
JobCreateSerializer._declared_fields["confirm_large"] = serializers.BooleanField(
    required=False, default=False,
    help_text="Needed (true) for a job above the large-job threshold (prompts x k x max_new_tokens)",
)


class CatalogParamSerializer(serializers.Serializer):
    """A declared parameter (toxplatform.params.Param.describe())."""

    name = serializers.CharField()
    type = serializers.CharField()
    default = serializers.JSONField()
    help = serializers.CharField()
    allowed = serializers.CharField(required=False)
    optional = serializers.BooleanField(required=False)


class CatalogEntrySerializer(serializers.Serializer):
    """A detox method or scorer: its name, one-line summary and declared parameters."""

    name = serializers.CharField()
    summary = serializers.CharField()
    parameters = CatalogParamSerializer(many=True)


class JobMetricSerializer(serializers.ModelSerializer):
    language = serializers.CharField(source="language_id")

    class Meta:
        model = JobMetric
        fields = ["language", "category", "scorer", "metric", "subset", "variant", "value", "n", "ci_low", "ci_high"]
        read_only_fields = fields


class JobSampleSerializer(serializers.Serializer):
    """One generation with its prompt and scores: the records of the samples download."""

    job = serializers.IntegerField()
    language = serializers.CharField()
    prompt_id = serializers.IntegerField()
    external_id = serializers.CharField()
    group_id = serializers.CharField(allow_null=True)
    prompt_is_toxic = serializers.BooleanField(allow_null=True)
    prompt = serializers.CharField()
    sample_index = serializers.IntegerField()
    continuation = serializers.CharField()
    token_count = serializers.IntegerField()
    scores = serializers.DictField(
        child=serializers.DictField(child=serializers.FloatField(allow_null=True)),
        help_text="scorer key -> harm category -> value in [0, 1] (perplexity: the value); null: no value",
    )
    score_details = serializers.DictField(child=serializers.DictField(), help_text="each scorer's raw output")

    def to_representation(self, generation):
        return exports.sample_record(generation)


# --- comparisons and leaderboards (read-only views of evaluation.comparison / leaderboards) ---


class PairedDifferenceSerializer(serializers.Serializer):
    metric = serializers.CharField()
    a = serializers.FloatField(allow_null=True)
    b = serializers.FloatField(allow_null=True)
    difference = serializers.FloatField(allow_null=True, help_text="A - B, mean over shared prompts")
    n = serializers.IntegerField(help_text="prompts both jobs have valid scores for")
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True, help_text="paired sign-flip permutation test")
    significant = serializers.BooleanField(help_text="the interval excludes 0 and p < 0.05")


class LanguageComparisonSerializer(serializers.Serializer):
    language = serializers.CharField(source="language.code", default=None, help_text="null: every language")
    n = serializers.IntegerField()
    rows = PairedDifferenceSerializer(many=True)


class ComparisonSerializer(serializers.Serializer):
    a = serializers.IntegerField(source="a.pk")
    b = serializers.IntegerField(source="b.pk")
    scorer = serializers.CharField()
    category = serializers.CharField()
    k = serializers.IntegerField()
    rule = serializers.CharField()
    threshold = serializers.FloatField()
    only_in_a = serializers.IntegerField()
    only_in_b = serializers.IntegerField()
    notes = serializers.ListField(child=serializers.CharField())
    languages = LanguageComparisonSerializer(many=True)
    overall = LanguageComparisonSerializer(allow_null=True)


class LeaderboardCellSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()
    std = serializers.FloatField(allow_null=True)
    variant = serializers.CharField()
    best = serializers.BooleanField()


class LeaderboardEntrySerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    job = serializers.IntegerField(source="job.pk")
    model = serializers.CharField(source="job.model.name")
    method = serializers.CharField(source="job.detox_method")
    cells = serializers.DictField(child=LeaderboardCellSerializer(), help_text="by metric: emt, tp, avg, ppl, dist-n")


class LanguageLeaderboardSerializer(serializers.Serializer):
    language = serializers.CharField(source="language.code")
    dataset = serializers.CharField(source="selection.dataset.slug", default=None)
    scorer = serializers.CharField(source="selection.scorer")
    category = serializers.CharField(source="selection.category")
    subset = serializers.CharField(source="selection.subset")
    k = serializers.IntegerField(source="selection.k", allow_null=True, help_text="null: each job's own")
    rule = serializers.CharField(source="selection.rule", help_text="empty: each job's own")
    fluency = serializers.CharField(source="selection.fluency", help_text="whose perplexity fills ppl")
    entries = serializers.SerializerMethodField()

    @extend_schema_field(LeaderboardEntrySerializer(many=True))
    def get_entries(self, board) -> list[dict]:
        return [
            LeaderboardEntrySerializer({"rank": rank, "job": entry.job, "cells": entry.cells}).data
            for rank, entry in enumerate(board.entries, start=1)
        ]
