"""Generic files whose columns are named on the command line (`--map FIELD=COLUMN`).

Fields a column can fill:
    text                      the prompt (required)
    id                        external id (default: "line-<n>")
    language                  BCP-47 code (default: the single --languages code)
    group                     group id: the same prompt across languages
    culturally_specific       true/false
    toxic                     true/false (else from --toxic-threshold on the toxicity label)
    label:<category>          a score of that harm category
    raters:<category>         every rater's score (a JSON list; in CSV "[1,2,3]" or "1|2|3");
                              the label is their mean unless label:<category> is mapped too
    metadata:<key>            copied into the prompt's metadata under <key>
In JSON Lines a column may be a dotted path into nested objects ("prompt.text").
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from statistics import fmean
from typing import Any, ClassVar

from django.utils.text import slugify

from toxplatform.corpus.importers.base import (
    ByteProgress,
    DatasetInfo,
    Importer,
    LabelRecord,
    Location,
    PromptRecord,
    Row,
)
from toxplatform.errors import ApplicationError

PLAIN_FIELDS = ("text", "id", "language", "group", "culturally_specific", "toxic")
PREFIXED_FIELDS = ("label", "raters", "metadata")
DEFAULT_LABEL_SOURCE = "dataset"


class MappedImporter(Importer):
    """Base of the `jsonl` and `csv` formats: the same mapping over differently read rows."""

    typed: ClassVar[bool] = True
    suffixes: ClassVar[tuple[str, ...]] = ()
    option_names = frozenset({"map", "label_scale", "label_source", "toxic_threshold"})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.columns: dict[str, str] = self._parse_map(self.options.get("map") or {})
        self.categories = self._mapped_categories()
        self.scales = self._parse_scales(self.options.get("label_scale") or {})
        self.label_source = str(self.options.get("label_source") or DEFAULT_LABEL_SOURCE)
        self.toxic_threshold = self._parse_threshold(self.options.get("toxic_threshold"))
        self.default_language = None
        if "language" not in self.columns:
            if not self.languages or len(self.languages) != 1:
                raise ApplicationError(
                    "Say which language the rows are in: map a language column (--map language=COLUMN) "
                    "or pass exactly one --languages code"
                )
            self.default_language = next(iter(self.languages))

    def read_rows(self, path: Path, progress: ByteProgress | None) -> Iterator[tuple[Location, dict]]:
        raise NotImplementedError

    def dataset_info(self) -> DatasetInfo:
        stem = self.path.stem if self.path.is_file() else self.path.name
        return DatasetInfo(
            slug=slugify(stem)[:100] or self.format_name, name=stem, source=str(self.path.resolve())
        )

    def files(self) -> list[Path]:
        return self.data_files(self.suffixes)

    def records(self, progress: ByteProgress | None = None) -> Iterator[PromptRecord]:
        for path in self.files():
            for location, data in self.read_rows(path, progress):
                record = self._record(Row(location, data, typed=self.typed))
                if self.wants(record.language):
                    yield record

    # Mapping and options, checked once before any row is read.

    def _parse_map(self, mapping: Mapping[str, str]) -> dict[str, str]:
        columns = {}
        for target, column in mapping.items():
            kind, _, name = target.partition(":")
            valid = (target in PLAIN_FIELDS) or (kind in PREFIXED_FIELDS and name)
            if not valid:
                raise ApplicationError(
                    f"Cannot map {target!r}: the fields are {', '.join(PLAIN_FIELDS)}, "
                    "label:<category>, raters:<category> and metadata:<key>",
                    {"map": target},
                )
            if not isinstance(column, str) or not column.strip():
                raise ApplicationError(f"--map {target}= needs a column name", {"map": target})
            columns[target] = column.strip()
        if "text" not in columns:
            raise ApplicationError("Map the prompt text: --map text=COLUMN", {"map": "text"})
        return columns

    def _mapped_categories(self) -> list[str]:
        categories = []
        for target in self.columns:
            kind, _, slug = target.partition(":")
            if kind in ("label", "raters") and slug not in categories:
                if slug not in self.catalog.categories:
                    raise ApplicationError(
                        f"Unknown harm category {slug!r} in --map {target}; known: "
                        f"{', '.join(self.catalog.categories)}",
                        {"category": slug},
                    )
                categories.append(slug)
        return categories

    def _parse_scales(self, scales: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
        parsed = {slug: self.catalog.categories[slug] for slug in self.categories}
        for slug, scale in scales.items():
            if slug not in self.categories:
                raise ApplicationError(
                    f"--label-scale {slug}: no label:{slug} or raters:{slug} column is mapped", {"category": slug}
                )
            try:
                low, high = (float(x) for x in (scale.split(":") if isinstance(scale, str) else scale))
            except (TypeError, ValueError):
                raise ApplicationError(
                    f"--label-scale {slug}={scale}: expected MIN:MAX, e.g. 0:1", {"category": slug}
                ) from None
            if not low < high:
                raise ApplicationError(f"--label-scale {slug}: MIN must be below MAX", {"category": slug})
            parsed[slug] = (low, high)
        return parsed

    def _parse_threshold(self, threshold: Any) -> float | None:
        if threshold is None:
            return None
        if "toxicity" not in self.categories:
            raise ApplicationError("--toxic-threshold needs a toxicity score: --map label:toxicity=COLUMN")
        try:
            return float(threshold)
        except (TypeError, ValueError):
            raise ApplicationError(f"--toxic-threshold: expected a number, got {threshold!r}") from None

    # One row.

    def _record(self, row: Row) -> PromptRecord:
        columns = self.columns
        text = row.text(columns["text"])
        if "language" in columns:
            raw = row.text(columns["language"])
            language = self.catalog.language_code(raw)
            if language is None:
                raise row.error(columns["language"], f"unknown language code {raw!r}")
        else:
            language = self.default_language
        external_id = row.identifier(columns["id"]) if "id" in columns else f"line-{row.location.line}"
        group_id = ""
        if "group" in columns and row.get(columns["group"]) != "":  # "" in JSON: no group
            group_id = row.identifier(columns["group"], required=False) or ""
        labels = self._labels(row)
        is_toxic = row.boolean(columns["toxic"]) if "toxic" in columns else None
        if is_toxic is None and self.toxic_threshold is not None:
            toxicity = next((label.value for label in labels if label.category == "toxicity"), None)
            is_toxic = None if toxicity is None else toxicity >= self.toxic_threshold
        culturally_specific = (
            bool(row.boolean(columns["culturally_specific"])) if "culturally_specific" in columns else False
        )
        metadata = {}
        for target, column in columns.items():
            kind, _, key = target.partition(":")
            if kind == "metadata" and row.has(column):
                metadata[key] = row.json_value(column)
        return PromptRecord(
            location=row.location,
            language=language,
            external_id=external_id,
            text=text,
            group_id=group_id,
            culturally_specific=culturally_specific,
            is_toxic=is_toxic,
            metadata=metadata,
            labels=labels,
            id_field=columns.get("id", "(line number)"),
        )

    def _labels(self, row: Row) -> list[LabelRecord]:
        labels = []
        for slug in self.categories:
            low, high = self.scales[slug]
            raters_column = self.columns.get(f"raters:{slug}")
            raters = row.number_list(raters_column, low=low, high=high) if raters_column else None
            value_column = self.columns.get(f"label:{slug}")
            value = row.number(value_column, low=low, high=high) if value_column else None
            if value is None and raters:
                value = fmean(raters)
            if value is not None:
                labels.append(LabelRecord(slug, value, self.label_source, low, high, tuple(raters or ())))
        return labels
