"""API shapes. What an annotator gets (WorkItem) is blind: texts and questions, no job ids."""
from rest_framework import serializers

from annotations.models import Campaign


class CampaignSerializer(serializers.ModelSerializer):
    jobs = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    languages = serializers.SlugRelatedField(many=True, read_only=True, slug_field="code")
    categories = serializers.SlugRelatedField(many=True, read_only=True, slug_field="slug")
    annotators = serializers.SlugRelatedField(many=True, read_only=True, slug_field="username")
    items = serializers.IntegerField(source="items.count", read_only=True)

    class Meta:
        model = Campaign
        fields = ["id", "name", "kind", "status", "jobs", "languages", "categories", "ask_fluency", "items_per_language",
                  "overlap", "selection", "seed", "instructions", "instructions_by_language", "blur_text",
                  "break_after_minutes", "daily_cap", "reservation_minutes", "annotators", "items", "created_at"]


class CampaignCreateSerializer(serializers.Serializer):
    """The service checks everything (jobs finished, languages, categories, gold); this only parses."""

    name = serializers.CharField(max_length=200)
    kind = serializers.CharField()
    jobs = serializers.ListField(child=serializers.IntegerField())
    languages = serializers.ListField(child=serializers.CharField())
    categories = serializers.ListField(child=serializers.CharField(), default=["toxicity"])
    ask_fluency = serializers.BooleanField(default=False)
    items_per_language = serializers.IntegerField(default=20)
    overlap = serializers.IntegerField(default=3)
    selection = serializers.CharField(default="random")
    seed = serializers.IntegerField(default=0)
    instructions = serializers.CharField(default="", allow_blank=True)
    instructions_by_language = serializers.DictField(child=serializers.CharField(), default=dict)
    blur_text = serializers.BooleanField(default=False)
    break_after_minutes = serializers.IntegerField(default=45)
    daily_cap = serializers.IntegerField(default=200)
    reservation_minutes = serializers.IntegerField(default=20)
    annotators = serializers.ListField(child=serializers.CharField(), default=list)
    gold = serializers.ListField(child=serializers.DictField(), default=list)


class NextSerializer(serializers.Serializer):
    campaign = serializers.IntegerField()


class AnswerSerializer(serializers.Serializer):
    answer = serializers.DictField(help_text='{"toxicity": "left"} (pairwise, as shown) or {"toxicity": 3} (rating)')
    time_ms = serializers.IntegerField(required=False, min_value=0)


class SkipSerializer(serializers.Serializer):
    reason = serializers.CharField()
    note = serializers.CharField(required=False, allow_blank=True, default="")


def work_item(workspace) -> dict:
    """The blind view of an assignment, as the workspace page shows it."""
    return {
        "assignment": workspace.assignment.pk,
        "campaign": workspace.campaign.pk,
        "state": workspace.assignment.state,
        "expires_at": workspace.assignment.expires_at,
        "language": workspace.language.code,
        "direction": workspace.language.direction,
        "prompt": workspace.prompt_text,
        "outputs": [{"side": output.side or None, "text": output.text} for output in workspace.outputs],
        "questions": [
            {"name": q.name, "text": q.text, "help": q.help,
             "choices": [{"value": c.value, "label": c.label, "key": c.key} for c in q.choices]}
            for q in workspace.questions
        ],
        "current_answer": workspace.current,
        "version": workspace.version,
        "instructions": workspace.instructions,
    }
