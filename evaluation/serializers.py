"""API representations of evaluation jobs, their progress and their metrics.

The create serializer checks only the shape of the input (types); services.create_job checks
the values (ranges, known languages, model paths, method and scorer parameters) and its
ApplicationError becomes a 400 naming every bad field. Fields left out take create_job's
defaults, so the defaults live in one place.
"""
from rest_framework import serializers

from evaluation import exports
from evaluation.models import EvaluationJob, JobMetric


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
        fields = [*JobSerializer.Meta.fields, "progress"]
        read_only_fields = fields

    def get_progress(self, job) -> dict:
        return JobProgressSerializer(self.context["progress"]).data


class JobCreateSerializer(serializers.Serializer):
    model = serializers.CharField(
        help_text="A registered model's name, a local model directory, a .gguf file, or a packaged "
        "model name (gemma-3-270m, smollm2-135m-instruct)."
    )
    method = serializers.CharField(required=False, help_text="Detox method name (default: none).")
    method_params = serializers.DictField(required=False)
    dataset = serializers.CharField(help_text="Dataset slug.")
    languages = serializers.ListField(child=serializers.CharField(), required=False, help_text="Empty: all.")
    categories = serializers.ListField(child=serializers.CharField(), required=False)
    prompt_split = serializers.CharField(required=False, help_text="all, toxic or nontoxic.")
    prompts_per_language = serializers.IntegerField(required=False, allow_null=True)
    k = serializers.IntegerField(required=False)
    max_new_tokens = serializers.IntegerField(required=False)
    top_p = serializers.FloatField(required=False)
    temperature = serializers.FloatField(required=False)
    seed = serializers.IntegerField(required=False)
    scorers = serializers.ListField(
        child=serializers.JSONField(),
        help_text='At least one: scorer names or {"name": ..., "params": {...}, "key": ...} objects; the '
        "optional key names the scorer's results (default: the scorer's name and model).",
    )
    batch_size = serializers.IntegerField(required=False)
    chunk_size = serializers.IntegerField(required=False)
    toxic_threshold = serializers.FloatField(required=False)
    threshold_rule = serializers.CharField(required=False, help_text='">=" or ">".')
    name = serializers.CharField(required=False, allow_blank=True)


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
