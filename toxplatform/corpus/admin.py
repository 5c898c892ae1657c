from django.contrib import admin

from toxplatform.corpus.models import Dataset, HarmCategory, Language, Prompt, PromptLabel


@admin.register(Language)
class LanguageAdmin(admin.ModelAdmin):
    list_display = ["code", "english_name", "native_name", "script", "direction"]
    list_filter = ["direction", "script"]
    search_fields = ["code", "english_name", "native_name"]


@admin.register(HarmCategory)
class HarmCategoryAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "scale_min", "scale_max", "position"]
    search_fields = ["slug", "name"]
    ordering = ["position", "slug"]


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "version", "format", "license", "imported_at"]
    list_filter = ["format"]
    search_fields = ["slug", "name", "source"]
    readonly_fields = ["checksum", "imported_at"]


class PromptLabelInline(admin.TabularInline):
    model = PromptLabel
    extra = 0
    fields = ["category", "value", "rater_values", "num_raters", "source", "scale_min", "scale_max"]


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = [
        "id", "dataset", "language", "external_id", "group_id", "short_text", "is_toxic", "culturally_specific"
    ]
    list_filter = ["dataset", "is_toxic", "culturally_specific", "language"]
    search_fields = ["external_id", "group_id", "text"]
    list_select_related = ["dataset", "language"]
    raw_id_fields = ["dataset"]
    inlines = [PromptLabelInline]
    # Exact counts of 30k+ rows on every changelist page are slow and not needed.
    show_full_result_count = False

    @admin.display(description="text")
    def short_text(self, prompt: Prompt) -> str:
        # Plain string: the admin escapes it.
        return prompt.text if len(prompt.text) <= 80 else prompt.text[:79] + "…"


@admin.register(PromptLabel)
class PromptLabelAdmin(admin.ModelAdmin):
    list_display = ["id", "prompt", "category", "value", "num_raters", "source"]
    list_filter = ["category", "source", "prompt__dataset"]
    search_fields = ["prompt__external_id", "prompt__text"]
    list_select_related = ["prompt__dataset", "category"]
    raw_id_fields = ["prompt"]
    show_full_result_count = False
