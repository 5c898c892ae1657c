from django.contrib import admin

from annotations.models import Assignment, Campaign, Item, Judgment


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "kind", "status", "overlap", "created_at")
    list_filter = ("kind", "status")
    filter_horizontal = ("annotators",)


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("id", "campaign", "language", "done_count", "is_gold", "priority")
    list_filter = ("campaign", "language", "is_gold")
    raw_id_fields = ("prompt", "generation_a", "generation_b")


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("id", "item", "annotator", "state", "claimed_at", "expires_at", "skip_reason")
    list_filter = ("state",)
    raw_id_fields = ("item",)


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    """Read-only: a judgment is history; an edit is a new version made by its annotator."""

    list_display = ("id", "assignment", "version", "time_ms", "created_at")
    readonly_fields = ("assignment", "version", "answer", "order_shown", "time_ms", "created_at")

    def has_change_permission(self, request, obj=None):
        return False
