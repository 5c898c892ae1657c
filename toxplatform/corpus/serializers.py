"""Read-only API representations of the corpus. Prompt text is data: JSON carries it verbatim."""
from rest_framework import serializers

from toxplatform.corpus.models import Dataset, HarmCategory, Language, Prompt, PromptLabel


class LanguageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Language
        fields = ["code", "english_name", "native_name", "script", "direction"]


class HarmCategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = HarmCategory
        fields = ["slug", "name", "scale_min", "scale_max", "description", "position"]


class ScaleSerializer(serializers.Serializer):
    min = serializers.FloatField()
    max = serializers.FloatField()


class DatasetSerializer(serializers.ModelSerializer):
    # Annotated by selectors.dataset_list.
    prompt_count = serializers.IntegerField(source="num_prompts", read_only=True)
    language_count = serializers.IntegerField(source="num_languages", read_only=True)

    class Meta:
        model = Dataset
        fields = [
            "slug", "name", "format", "version", "license", "source", "description",
            "imported_at", "checksum", "prompt_count", "language_count",
        ]


class DatasetLanguageCountSerializer(serializers.Serializer):
    """One selectors.LanguageRow."""

    language = serializers.CharField(source="language.code")
    prompt_count = serializers.IntegerField(source="prompts")
    toxic_count = serializers.IntegerField(source="toxic")
    non_toxic_count = serializers.IntegerField(source="non_toxic")
    culturally_specific_count = serializers.IntegerField(source="culturally_specific")


class DatasetLabelCountSerializer(serializers.Serializer):
    category = serializers.CharField()
    source = serializers.CharField()
    scale = ScaleSerializer()
    label_count = serializers.IntegerField()


class DatasetDetailSerializer(DatasetSerializer):
    # Filled in by DatasetViewSet.get_object from the selectors.
    languages = DatasetLanguageCountSerializer(many=True, read_only=True, source="language_counts")
    labels = DatasetLabelCountSerializer(many=True, read_only=True, source="label_counts")

    class Meta(DatasetSerializer.Meta):
        fields = DatasetSerializer.Meta.fields + ["languages", "labels"]


class LabelScaleSerializer(serializers.Serializer):
    min = serializers.FloatField(source="scale_min")
    max = serializers.FloatField(source="scale_max")


class PromptLabelSerializer(serializers.ModelSerializer):
    category = serializers.CharField(source="category_id")
    scale = LabelScaleSerializer(source="*")

    class Meta:
        model = PromptLabel
        fields = ["category", "value", "rater_values", "num_raters", "source", "scale"]


class PromptSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.slug")
    language = serializers.CharField(source="language_id")
    labels = PromptLabelSerializer(many=True, read_only=True)

    class Meta:
        model = Prompt
        fields = [
            "id", "dataset", "language", "external_id", "group_id", "text",
            "culturally_specific", "is_toxic", "metadata", "labels",
        ]
