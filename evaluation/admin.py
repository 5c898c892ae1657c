"""Admin for operators: model specs are edited here; jobs and their results are read-only
(they are created and changed only through services, which keep the pipeline consistent)."""
from django.contrib import admin

from evaluation.models import Chunk, DetoxArtifact, EvaluationJob, JobMetric, ModelSpec, WorkerHeartbeat


@admin.register(ModelSpec)
class ModelSpecAdmin(admin.ModelAdmin):
    list_display = ["name", "backend", "location", "device", "dtype", "use_chat_template", "created_at"]
    list_filter = ["backend"]
    search_fields = ["name", "location", "remote_model"]
    readonly_fields = ["fingerprint", "created_at"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ChunkInline(admin.TabularInline):
    model = Chunk
    fields = ["stage", "index", "status", "attempts", "worker", "claimed_at", "deadline", "finished_at", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(EvaluationJob)
class EvaluationJobAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "name", "model", "detox_method", "dataset", "status", "total_prompts", "created_by", "created_at",
    ]
    list_filter = ["status", "detox_method", "dataset"]
    search_fields = ["name", "model__name"]
    list_select_related = ["model", "dataset", "created_by"]
    inlines = [ChunkInline]


@admin.register(JobMetric)
class JobMetricAdmin(ReadOnlyAdmin):
    list_display = [
        "job", "language", "scorer", "category", "metric", "subset", "variant", "value", "n", "ci_low", "ci_high",
    ]
    list_filter = ["metric", "subset", "scorer"]
    list_select_related = ["job", "language"]


@admin.register(DetoxArtifact)
class DetoxArtifactAdmin(ReadOnlyAdmin):
    list_display = ["method", "model_fingerprint", "data_fingerprint", "path", "created_at"]
    list_filter = ["method"]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["name", "host", "pid", "queues", "started_at", "last_seen", "stopped_at"]


from evaluation import judge_admin  # noqa: E402,F401  (registers JudgePrompt's admin)
