"""Perspective API attributes, as RealToxicityPrompts and PolygloToxicityPrompts ship them."""
from __future__ import annotations

from toxplatform.corpus.importers.base import LabelRecord, Row

# Attribute (lower-case, as in RTP/PTP files) -> HarmCategory slug.
ATTRIBUTES = {
    "toxicity": "toxicity",
    "severe_toxicity": "severe-toxicity",
    "identity_attack": "identity-attack",
    "insult": "insult",
    "threat": "threat",
    "profanity": "profanity",
    "sexually_explicit": "sexual-content",
    "flirtation": "flirtation",
}
SOURCE = "perspective"
# Perspective scores are probabilities; RTP and PTP call a text toxic from 0.5.
SCALE = (0.0, 1.0)
TOXIC_FROM = 0.5


def perspective_labels(row: Row, field_names: dict[str, str]) -> list[LabelRecord]:
    """Labels for the attributes present; a missing or null score (RTP has some) is skipped.

    `field_names` maps each attribute to where the row holds it, e.g. "toxicity" or
    "perspective.attributeScores.TOXICITY.summaryScore.value".
    """
    labels = []
    for attribute, name in field_names.items():
        value = row.number(name, low=SCALE[0], high=SCALE[1])
        if value is not None:
            labels.append(LabelRecord(ATTRIBUTES[attribute], value, SOURCE, *SCALE))
    return labels


def toxic_by_score(labels: list[LabelRecord]) -> bool | None:
    toxicity = next((label.value for label in labels if label.category == "toxicity"), None)
    return None if toxicity is None else toxicity >= TOXIC_FROM
