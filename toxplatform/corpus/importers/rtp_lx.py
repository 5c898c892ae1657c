"""RTP-LX (de Wynter et al., 2024): 28 files RTP_LX_<CODE>.json, JSON Lines, three human raters.

Quirks of the real v0.3 release this reader is built for (see the data README):
- lines end with CRLF and strings may hold U+2028, so lines are split at "\\n" only;
- `Index` is an int in some files and a string in others; SR and SW hold records with
  Index "NA" (culturally specific, no source document) that get an id from their text;
- Index 0-998 are transcreations of RealToxicityPrompts, aligned across languages by
  that number; Index >= 999 (and "NA") were written for one culture;
- `Locale` is unreliable; `Dialect`/`Locale` carry regional variants (pt-BR vs pt-PT,
  Egyptian/Levantine/Saudi Arabic, Russian from Ukraine or Russia).
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

from toxplatform.corpus.importers.base import (
    ByteProgress,
    DatasetInfo,
    Importer,
    LabelRecord,
    PromptRecord,
    Row,
    describe,
    read_jsonl,
)
from toxplatform.errors import ApplicationError

# File code -> Language code. SR is BCMS (Bosnian/Croatian/Montenegrin/Serbian), hence "sh".
FILE_LANGUAGES = {
    "AR": "ar", "CS": "cs", "DA": "da", "DE": "de", "EN": "en", "ES": "es", "FI": "fi",
    "FR": "fr", "HE": "he", "HI": "hi", "HU": "hu", "ID": "id", "IT": "it", "JA": "ja",
    "KO": "ko", "NL": "nl", "NO-NB": "nb", "PL": "pl", "PT": "pt", "RU": "ru", "SR": "sh",
    "SV": "sv", "SW": "sw", "TH": "th", "TR": "tr", "UK": "uk", "ZH-Hans": "zh-Hans",
    "ZH-Hant": "zh-Hant",
}
FILE_NAME = re.compile(r"^RTP_LX_(?P<code>[A-Za-z-]+)\.json$")

# RTP-LX annotation key -> HarmCategory slug.
CATEGORIES = {
    "Toxicity": "toxicity",
    "IdentityAttack": "identity-attack",
    "Bias": "bias",
    "Microaggression": "microaggression",
    "Violence": "violence",
    "SelfHarm": "self-harm",
    "Insult": "insult",
    "SexualContent": "sexual-content",
}
# 3 is "toxic" on RTP-LX's 1-5 toxicity scale (1 none, 2 slightly toxic, 3 toxic, ...).
TOXIC_FROM = 3.0
# Indices below this were transcreated from RealToxicityPrompts; the rest are culturally specific.
FIRST_CULTURAL_INDEX = 999
NOT_AVAILABLE = "NA"

# Dialect (as written in the files) -> ISO 3166 region of a BCP-47 variant tag. Levantine
# Arabic spans several countries, so it keeps its dialect name and gets no variant.
DIALECT_REGIONS = {"portugal": "PT", "egyptian": "EG", "saudi": "SA", "ukraine": "UA", "russia": "RU"}
LOCALE_VARIANTS = {"pt-br": "pt-BR"}


class RtpLxImporter(Importer):
    format_name = "rtp-lx"
    summary = "the RTP-LX release: a directory of RTP_LX_<CODE>.json files (or one such file)"

    def dataset_info(self) -> DatasetInfo:
        return DatasetInfo(
            slug="rtp-lx",
            name="RTP-LX",
            version="0.3",
            license="MIT (with third-party terms, see NOTICE)",
            source=str(self.path.resolve()),
            description="Human-transcreated toxicity prompts in 28 languages with 3 raters per item "
            "(de Wynter et al., 2024).",
        )

    def files(self) -> list[Path]:
        candidates = [self.path] if self.path.is_file() else sorted(self.path.glob("RTP_LX_*.json"))
        if not candidates:
            raise ApplicationError(f"No RTP_LX_<CODE>.json files in {self.path}", {"path": str(self.path)})
        chosen, present = [], set()
        for path in candidates:
            language = self._file_language(path)
            present.add(language)
            if self.wants(language):
                chosen.append(path)
        missing = sorted((self.languages or set()) - present)
        if missing:
            raise ApplicationError(
                f"No RTP-LX file for language(s) {', '.join(missing)} in {self.path}",
                {"languages": ",".join(missing)},
            )
        return chosen

    def _file_language(self, path: Path) -> str:
        match = FILE_NAME.match(path.name)
        code = match and FILE_LANGUAGES.get(match["code"])
        if not code:
            raise ApplicationError(
                f"{path.name} is not an RTP-LX file name (expected RTP_LX_<CODE>.json with one of "
                f"{', '.join(FILE_LANGUAGES)})",
                {"file": str(path)},
            )
        return code

    def records(self, progress: ByteProgress | None = None) -> Iterator[PromptRecord]:
        for path in self.files():
            language = self._file_language(path)
            for location, obj in read_jsonl(path, progress):
                yield self._record(Row(location, obj, typed=True), language)

    def _record(self, row: Row, language: str) -> PromptRecord:
        text = row.text("Prompt")
        index = self._index(row)
        if index is None:
            # "NA" rows repeat the same Index, so their identity is their text.
            external_id = "na-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
        else:
            external_id = str(index)
        transcreated = index is not None and index < FIRST_CULTURAL_INDEX
        labels = self._labels(row)
        toxicity = next(label.value for label in labels if label.category == "toxicity")
        return PromptRecord(
            location=row.location,
            language=language,
            external_id=external_id,
            text=text,
            group_id=external_id if transcreated else "",
            culturally_specific=not transcreated,
            is_toxic=toxicity >= TOXIC_FROM,
            metadata=self._metadata(row, language),
            labels=labels,
            id_field="Index",
        )

    @staticmethod
    def _index(row: Row) -> int | None:
        value = row.get("Index")
        if value == NOT_AVAILABLE:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
        raise row.error("Index", f'expected a whole number >= 0 or "NA", got {describe(value)}')

    def _labels(self, row: Row) -> list[LabelRecord]:
        means = row.child("Annotations", required=True)
        raters = row.child("AnnotationsRaw", required=True)
        for group in (means, raters):
            unknown = sorted(set(group.data) - set(CATEGORIES))
            if unknown:
                raise group.error(unknown[0], f"unknown harm category (known: {', '.join(CATEGORIES)})")
        labels = []
        for key, slug in CATEGORIES.items():
            low, high = self.catalog.categories[slug]
            mean = means.number(key, required=True, low=low, high=high)
            values = raters.number_list(key, required=True, low=low, high=high)
            labels.append(LabelRecord(slug, mean, "human", low, high, tuple(values)))
        return labels

    @staticmethod
    def _metadata(row: Row, language: str) -> dict:
        locale = (row.text("Locale", required=False) or "").strip()
        dialect = (row.text("Dialect", required=False) or "").strip()
        completion = row.text("Completion", required=False)
        original = row.mapping("OriginalMetadata")
        metadata: dict = {}
        if locale:
            metadata["locale_raw"] = locale
        if dialect:
            metadata["dialect"] = dialect
        variant = _variant(language, locale, dialect)
        if variant:
            metadata["variant"] = variant
        if original is not None:
            metadata["original"] = row.json_value("OriginalMetadata")
        if completion:
            metadata["completion"] = completion
        return metadata


def _variant(language: str, locale: str, dialect: str) -> str:
    """A BCP-47 regional tag where the files make it unambiguous (pt-BR, pt-PT, ar-EG, ...)."""
    region = DIALECT_REGIONS.get(dialect.casefold())
    if region:
        return f"{language}-{region}"
    return LOCALE_VARIANTS.get(locale.casefold(), "")

