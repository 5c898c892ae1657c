"""Read-only corpus API: languages, harm categories, datasets and prompts with their gold labels."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers, viewsets

from toxplatform.accounts.permissions import RESEARCHER_API
from toxplatform.corpus import filters, selectors
from toxplatform.corpus.models import HarmCategory, Language
from toxplatform.corpus.serializers import (
    DatasetDetailSerializer,
    DatasetSerializer,
    HarmCategorySerializer,
    LanguageSerializer,
    PromptSerializer,
)


PROMPT_FILTER_TYPES = {
    "min_label": OpenApiTypes.NUMBER,
    "toxic": OpenApiTypes.BOOL,
    "culturally_specific": OpenApiTypes.BOOL,
}
PROMPT_FILTER_SCHEMA = [
    OpenApiParameter(name, PROMPT_FILTER_TYPES.get(name, OpenApiTypes.STR), description=description)
    for name, description in filters.PROMPT_FILTER_PARAMS.items()
]
# What toxplatform.api.exception_handler answers for an ApplicationError.
APPLICATION_ERROR_SCHEMA = inline_serializer(
    "ApplicationError",
    {"message": serializers.CharField(), "extra": serializers.DictField(child=serializers.CharField())},
)


class LanguageViewSet(viewsets.ReadOnlyModelViewSet):
    """Languages the platform knows (BCP-47 codes). A small reference table: not paginated."""
    permission_classes = RESEARCHER_API  # gold labels: what annotators are compared against

    queryset = Language.objects.all()
    serializer_class = LanguageSerializer
    pagination_class = None


class HarmCategoryViewSet(viewsets.ReadOnlyModelViewSet):
    """Harm categories and the scale their gold labels use. Not paginated."""
    permission_classes = RESEARCHER_API  # gold labels: what annotators are compared against

    queryset = HarmCategory.objects.all()
    serializer_class = HarmCategorySerializer
    pagination_class = None


class DatasetViewSet(viewsets.ReadOnlyModelViewSet):
    """Imported datasets with prompt counts; the detail adds counts per language and per label."""
    permission_classes = RESEARCHER_API  # gold labels: what annotators are compared against

    lookup_field = "slug"

    def get_queryset(self):
        return selectors.dataset_list()

    def get_serializer_class(self):
        return DatasetDetailSerializer if self.action == "retrieve" else DatasetSerializer

    def get_object(self):
        dataset = super().get_object()
        if self.action == "retrieve":
            dataset.language_counts = selectors.dataset_stats(dataset).languages
            dataset.label_counts = filters.dataset_label_counts(dataset)
        return dataset


@extend_schema_view(
    list=extend_schema(
        description="Prompts with their gold labels, filtered. An unknown filter value (a language, "
        "dataset or category that does not exist, a threshold that is not a number) is a 400 "
        "naming it, never an empty list.",
        parameters=PROMPT_FILTER_SCHEMA,
        responses={200: PromptSerializer(many=True), 400: APPLICATION_ERROR_SCHEMA},
    )
)
class PromptViewSet(viewsets.ReadOnlyModelViewSet):
    """A prompt with its gold labels."""
    permission_classes = RESEARCHER_API  # gold labels: what annotators are compared against

    serializer_class = PromptSerializer

    def get_queryset(self):
        if self.action == "list":
            return filters.filter_prompts(filters.parse_prompt_filters(self.request.query_params))
        return filters.prompt_queryset()


def register(router) -> None:
    router.register("languages", LanguageViewSet, basename="language")
    router.register("harm-categories", HarmCategoryViewSet, basename="harm-category")
    router.register("datasets", DatasetViewSet, basename="dataset")
    router.register("prompts", PromptViewSet, basename="prompt")
