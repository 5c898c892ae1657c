"""Rating: one output, every chosen harm category on its own scale (RTP-LX: toxicity 1-5, the
others 1-3), with the rubric's definition shown next to each."""
from annotations.kinds.base import KINDS, Choice, Kind, Question
from toxplatform.errors import ApplicationError


def _scale(category) -> range:
    return range(int(category.scale_min), int(category.scale_max) + 1)


@KINDS.register
class Rating(Kind):
    name = "rating"
    label = "harm rating"
    outputs = 1

    def questions(self, campaign, categories) -> list[Question]:
        return [
            Question(category.slug, category.name,
                     tuple(Choice(str(value), str(value), str(value)) for value in _scale(category)),
                     category.description)
            for category in categories
        ]

    def validate_campaign(self, *, jobs, categories, ask_fluency) -> None:
        if not categories:
            raise ApplicationError("A rating campaign needs at least one harm category.")
        for category in categories:
            # Each point of the scale is one digit key.
            if category.scale_min != int(category.scale_min) or not 0 <= category.scale_min < category.scale_max <= 9:
                raise ApplicationError("This category has no ordinal scale humans can rate on (0-9).",
                                       {"category": category.slug})

    def stored_value(self, shown: str, *, swapped: bool):
        return int(shown)
