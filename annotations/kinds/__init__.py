"""Campaign kinds, one file each behind the platform registry: what an item holds, the
questions and their keyboard keys, how an answer is checked and stored, how gold is matched.

    kind = kinds.get(campaign.kind)
"""
from annotations.kinds.base import KINDS, Choice, Kind, Question
from annotations.kinds import pairwise, rating  # noqa: F401  (registers them)


def get(name: str) -> Kind:
    return KINDS.get(name)()


__all__ = ["KINDS", "Choice", "Kind", "Question", "get"]
