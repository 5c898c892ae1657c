from django.contrib import admin

from toxplatform.accounts.models import AnnotatorProfile


@admin.register(AnnotatorProfile)
class AnnotatorProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "language_codes"]
    search_fields = ["user__username", "languages__code"]
    list_filter = ["languages"]
    raw_id_fields = ["user"]
    filter_horizontal = ["languages"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user").prefetch_related("languages")

    @admin.display(description="languages")
    def language_codes(self, profile: AnnotatorProfile) -> str:
        return ", ".join(language.code for language in profile.languages.all())
