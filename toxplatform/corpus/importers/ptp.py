"""PolygloToxicityPrompts (Jain et al., 2024): web prompts in 17 languages, Perspective API scores.

One JSON Lines or CSV file per language (or one file with a language column), or a
directory of them. Column names are taken as the release and its common exports write
them: the text is `text` (or `prompt`), the language `lang` / `language` / `meta_data.lang`,
else the file name (ptp-ar.jsonl) or a single `--languages` code; scores are flat
columns (`toxicity`, `identity_attack`, ...) or the raw Perspective response
(`perspective.attributeScores.TOXICITY.summaryScore.value`). The id is `id` / `index`,
else "<file stem>:<line>".
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from toxplatform.corpus.importers.base import (
    ByteProgress,
    DatasetInfo,
    Importer,
    PromptRecord,
    Row,
    read_csv,
    read_jsonl,
)
from toxplatform.corpus.importers.perspective import ATTRIBUTES, perspective_labels, toxic_by_score

TEXT_FIELDS = ("text", "prompt")
LANGUAGE_FIELDS = ("lang", "language", "meta_data.lang")
ID_FIELDS = ("id", "index", "idx")
PERSPECTIVE_RESPONSES = ("perspective", "prompt_perspective")
METADATA_FIELDS = ("meta_data", "toxicity_bucket")


class PtpImporter(Importer):
    format_name = "ptp"
    summary = "PolygloToxicityPrompts JSONL/CSV per language (or a directory of them)"

    def dataset_info(self) -> DatasetInfo:
        return DatasetInfo(
            slug="ptp",
            name="PolygloToxicityPrompts",
            # Not stated in a file of the release: pass --dataset-license when you know it.
            license="",
            source=str(self.path.resolve()),
            description="425k naturally occurring web prompts in 17 languages with Perspective API scores "
            "(Jain et al., 2024).",
        )

    def files(self) -> list[Path]:
        chosen = []
        for path in self.data_files((".jsonl", ".json", ".csv")):
            language = self._file_language(path)
            if language is None or self.wants(language):
                chosen.append(path)
        return chosen

    def records(self, progress: ByteProgress | None = None) -> Iterator[PromptRecord]:
        for path in self.files():
            default_language = self._file_language(path) or self._only_requested_language()
            if path.suffix.lower() == ".csv":
                rows = (Row(loc, data, typed=False) for loc, data in read_csv(path, progress))
            else:
                rows = (Row(loc, data, typed=True) for loc, data in read_jsonl(path, progress))
            for row in rows:
                record = self._record(row, path, default_language)
                if self.wants(record.language):
                    yield record

    def _file_language(self, path: Path) -> str | None:
        """ptp-ar.jsonl, ar.csv, ptp_small_zh-Hans.jsonl: the language is the end of the name.

        Only the end: "my" or "no" elsewhere in a name is more likely a word than Burmese or Norwegian.
        """
        parts = [p for p in re.split(r"[-_.\s]+", path.stem) if p]
        for candidate in ("-".join(parts[-2:]), parts[-1] if parts else ""):
            code = self.catalog.language_code(candidate) if candidate else None
            if code:
                return code
        return None

    def _only_requested_language(self) -> str | None:
        return next(iter(self.languages)) if self.languages and len(self.languages) == 1 else None

    def _record(self, row: Row, path: Path, default_language: str | None) -> PromptRecord:
        text_field = next((name for name in TEXT_FIELDS if row.has(name)), TEXT_FIELDS[0])
        text = row.text(text_field)
        labels = perspective_labels(row, self._score_fields(row))
        metadata = {name: row.json_value(name) for name in METADATA_FIELDS if row.has(name)}
        id_field = next((name for name in ID_FIELDS if row.has(name)), None)
        return PromptRecord(
            location=row.location,
            language=self._language(row, default_language),
            external_id=self._external_id(row, id_field, path),
            text=text,
            is_toxic=toxic_by_score(labels),
            metadata=metadata,
            labels=labels,
            id_field=id_field or "(line number)",
        )

    def _language(self, row: Row, default_language: str | None) -> str:
        for name in LANGUAGE_FIELDS:
            raw = row.text(name, required=False) if row.has(name) else None
            if raw is not None:
                code = self.catalog.language_code(raw)
                if code is None:
                    raise row.error(name, f"unknown language code {raw!r}")
                return code
        if default_language is None:
            raise row.error(
                LANGUAGE_FIELDS[0],
                "missing, and neither the file name nor a single --languages code says which language this is",
            )
        return default_language

    @staticmethod
    def _external_id(row: Row, id_field: str | None, path: Path) -> str:
        if id_field is None:
            return f"{path.stem}:{row.location.line}"
        value = row.get(id_field)
        # PTP's wildchat split stores its index as a float (12.0).
        if row.typed and isinstance(value, float) and value.is_integer():
            return str(int(value))
        return row.identifier(id_field)

    @staticmethod
    def _score_fields(row: Row) -> dict[str, str]:
        """Flat score columns win; otherwise read the raw Perspective response when there is one."""
        fields = {attribute: attribute for attribute in ATTRIBUTES if row.has(attribute)}
        if fields or not row.typed:
            return fields
        for response in PERSPECTIVE_RESPONSES:
            if row.has(response):
                scores = f"{response}.attributeScores"
                return {
                    attribute: f"{scores}.{attribute.upper()}.summaryScore.value"
                    for attribute in ATTRIBUTES
                    if row.has(f"{scores}.{attribute.upper()}")
                }
        return {}
