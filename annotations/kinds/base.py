"""What every campaign kind provides. The questions and their choices (with keyboard keys) are
defined here once; the workspace template and its JavaScript render them from the page."""
from __future__ import annotations

from dataclasses import dataclass

from toxplatform.errors import ApplicationError
from toxplatform.registry import Registry

KINDS = Registry("campaign kind")

# Keys for actions that are not answers; shown on screen next to each button.
ACTION_KEYS = {"submit": "Enter", "skip": "s", "undo": "u", "reveal": "v", "next_question": "ArrowDown",
               "previous_question": "ArrowUp"}

# Why an item was skipped: (value, label, key). Skips never count toward the overlap.
SKIP_REASONS = [
    ("language", "Not my language or variety", "1"),
    ("unreadable", "Text is broken or unreadable", "2"),
    ("distressing", "Too distressing for me", "3"),
    ("unsure", "Cannot decide", "4"),
    ("other", "Other", "5"),
]
SKIP_REASON_VALUES = {value for value, _, _ in SKIP_REASONS}


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    key: str


@dataclass(frozen=True)
class Question:
    name: str
    text: str
    choices: tuple[Choice, ...]
    help: str = ""

    def value_for_key(self, key: str) -> str | None:
        return next((choice.value for choice in self.choices if choice.key == key), None)


class Kind:
    name = ""
    label = ""
    # Generations an item shows: 2 for pairwise, 1 for rating.
    outputs = 1

    def questions(self, campaign, categories) -> list[Question]:
        raise NotImplementedError

    def validate_campaign(self, *, jobs, categories, ask_fluency: bool) -> None:
        """Raise ApplicationError for a campaign this kind cannot run."""

    def parse_answer(self, questions: list[Question], data: dict, *, swapped: bool) -> dict:
        """Form or API data (values as shown on screen) -> the stored answer; every question
        must be answered with one of its choices."""
        answer = {}
        for question in questions:
            value = data.get(question.name)
            allowed = [choice.value for choice in question.choices]
            if value in (None, ""):
                raise ApplicationError("Every question needs an answer.", {"missing": question.name})
            if str(value) not in allowed:
                raise ApplicationError(
                    "Not one of the choices.", {"question": question.name, "value": str(value)[:50], "choices": ", ".join(allowed)}
                )
            answer[question.name] = self.stored_value(str(value), swapped=swapped)
        return answer

    def stored_value(self, shown: str, *, swapped: bool):
        return shown

    def shown_value(self, stored, *, swapped: bool) -> str:
        return str(stored)

    def gold_matches(self, answer: dict, gold: dict) -> bool:
        """All gold questions answered as the gold says."""
        return all(str(answer.get(name)) == str(value) for name, value in gold.items())
