"""What the corpus app does (state-changing functions): importing datasets.

`import_dataset` reads the files twice. The first pass checks every record (types,
languages, scales, duplicate ids) without touching the database, so a bad file fails
fast with the file, line and field named. The second pass writes everything in one
transaction: an error there (or files that changed in between) rolls it all back, so
the database is exactly as it was. Rows are upserted by (dataset, language,
external_id) and labels by (prompt, category, source), so importing the same files
again changes nothing.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from toxplatform.corpus.importers import Catalog, DatasetInfo, Importer, PromptRecord, RecordError, get_importer
from toxplatform.corpus.models import Dataset, Prompt, PromptLabel
from toxplatform.errors import ApplicationError

logger = logging.getLogger(__name__)

# Rows per INSERT ... ON CONFLICT statement (and per existence lookup).
IMPORT_BATCH_SIZE = 2000

PROMPT_KEY = ["dataset", "language", "external_id"]
PROMPT_FIELDS = ["text", "group_id", "culturally_specific", "is_toxic", "metadata"]
LABEL_KEY = ["prompt", "category", "source"]
LABEL_FIELDS = ["value", "rater_values", "num_raters", "scale_min", "scale_max"]

# Options the service itself takes (the rest go to the importer): they name the Dataset row.
DATASET_OPTIONS = {
    "dataset_name": "name",
    "dataset_version": "version",
    "dataset_license": "license",
    "dataset_description": "description",
}

# progress(stage, done, total): stage "check" counts bytes read, "write" counts prompts written.
ImportProgress = Callable[[str, int, int], None]


@dataclass
class LanguageCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    labels_created: int = 0
    labels_updated: int = 0
    labels_unchanged: int = 0

    @property
    def prompts(self) -> int:
        return self.created + self.updated + self.unchanged

    @property
    def labels(self) -> int:
        return self.labels_created + self.labels_updated + self.labels_unchanged

    def add(self, other: LanguageCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class ImportReport:
    format: str
    dataset: str
    dataset_created: bool
    files: list[str]
    checksum: str
    languages: dict[str, LanguageCounts] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def totals(self) -> LanguageCounts:
        total = LanguageCounts()
        for counts in self.languages.values():
            total.add(counts)
        return total

    @property
    def changed(self) -> bool:
        totals = self.totals
        return bool(totals.created or totals.updated or totals.labels_created or totals.labels_updated)


def import_dataset(
    format: str,
    path: str | Path,
    *,
    dataset_slug: str | None = None,
    languages: list[str] | None = None,
    options: dict[str, Any] | None = None,
    progress: ImportProgress | None = None,
) -> ImportReport:
    """Import the files at `path` in `format` (see importers.IMPORTERS) into one Dataset.

    `languages` restricts the import to those codes; `options` holds format options
    (e.g. {"map": {"text": "Prompt"}} for jsonl/csv) and the dataset_* names.
    Raises ApplicationError, with nothing written, when anything is wrong.
    """
    importer_class = get_importer(format)
    catalog = Catalog.load()
    wanted = catalog.resolve_languages(languages)
    importer_options = dict(options or {})
    named = {attribute: importer_options.pop(option, None) for option, attribute in DATASET_OPTIONS.items()}
    dataset_overrides = {attribute: str(value) for attribute, value in named.items() if value not in (None, "")}
    importer = importer_class(path, catalog=catalog, languages=wanted, options=importer_options)
    info = importer.dataset_info()
    slug = _valid_slug(dataset_slug or info.slug)
    files = importer.files()
    checksum = checksum_files(files)

    expected = _check_records(importer, files, progress)
    if not expected:
        where = f" in {', '.join(sorted(wanted))}" if wanted else ""
        raise ApplicationError(f"Nothing to import: {importer.path} holds no prompts{where}", {"path": str(path)})
    warnings = [
        f"No prompts in language {code}" for code in sorted(wanted or ()) if code not in expected
    ]

    with transaction.atomic():
        dataset, created = _lock_dataset(slug, format, info, dataset_overrides, checksum)
        counts = _write_records(dataset, importer, sum(expected.values()), progress)
        if checksum_files(files) != checksum:
            raise ApplicationError(
                f"The files under {importer.path} changed during the import; nothing was imported. Run it again.",
                {"path": str(path)},
            )
        report = ImportReport(
            format=format,
            dataset=dataset.slug,
            dataset_created=created,
            files=[str(p) for p in files],
            checksum=checksum,
            languages={code: counts[code] for code in sorted(counts)},
            warnings=warnings,
        )
        _record_import(dataset, created, info, dataset_overrides, checksum, report.changed)
    totals = report.totals
    logger.info(
        "imported %s into %s: %d prompts (%d new, %d updated), %d labels (%d new, %d updated)",
        path, dataset.slug, totals.prompts, totals.created, totals.updated,
        totals.labels, totals.labels_created, totals.labels_updated,
    )
    return report


def checksum_files(files: Iterable[Path]) -> str:
    """sha256 over the files' names and bytes, in the order read."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode("utf-8") + b"\0")
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _valid_slug(slug: str) -> str:
    if not slug or slugify(slug) != slug or len(slug) > Dataset._meta.get_field("slug").max_length:
        raise ApplicationError(
            f"{slug!r} is not a valid dataset slug (lower-case letters, digits, - and _; e.g. my-prompts)",
            {"dataset_slug": slug},
        )
    return slug


class _StageProgress:
    """Adds up small steps and reports them now and then, so a bar costs little per record."""

    def __init__(self, progress: ImportProgress | None, stage: str, total: int, every: int):
        self.progress, self.stage, self.total, self.every = progress, stage, total, every
        self.done = self.reported = 0

    def __call__(self, step: int) -> None:
        self.done += step
        if self.progress and self.done - self.reported >= self.every:
            self.finish()

    def finish(self) -> None:
        if self.progress:
            self.reported = self.done
            self.progress(self.stage, self.done, self.total)


def _check_records(importer: Importer, files: list[Path], progress: ImportProgress | None) -> dict[str, int]:
    """Pass 1: read and check every record; prompts per language. Raises RecordError."""
    bar = _StageProgress(progress, "check", sum(p.stat().st_size for p in files), every=1 << 18)
    first_seen: dict[str, Any] = {}
    per_language: dict[str, int] = defaultdict(int)
    for record in importer.records(bar):
        key = f"{record.language}\x1f{record.external_id}"
        earlier = first_seen.setdefault(key, record.location)
        if earlier is not record.location:
            where = f"line {earlier.line}" + ("" if earlier.file == record.location.file else f" of {earlier.file}")
            raise RecordError(
                record.location,
                record.id_field,
                f"duplicate id {record.external_id!r} for language {record.language} (first at {where})",
            )
        unknown = [label.category for label in record.labels if label.category not in importer.catalog.categories]
        if unknown:
            raise RecordError(record.location, None, f"harm category {unknown[0]!r} is not in the database")
        per_language[record.language] += 1
    bar.finish()
    return dict(per_language)


def _lock_dataset(
    slug: str, format: str, info: DatasetInfo, overrides: dict[str, str], checksum: str
) -> tuple[Dataset, bool]:
    """The Dataset row, created if new and locked so two imports of it run one after the other."""
    dataset = Dataset.objects.select_for_update().filter(slug=slug).first()
    created = False
    if dataset is None:
        fields = {
            "name": info.name,
            "version": info.version,
            "license": info.license,
            "description": info.description,
            **overrides,
        }
        try:
            with transaction.atomic():
                dataset = Dataset.objects.create(
                    slug=slug, format=format, source=info.source, checksum=checksum,
                    imported_at=timezone.now(), **fields,
                )
            created = True
        except IntegrityError:
            # Another import created it a moment ago: wait for it, then add to it.
            dataset = Dataset.objects.select_for_update().get(slug=slug)
    if dataset.format != format:
        raise ApplicationError(
            f"Dataset {slug!r} holds {dataset.format} data; import {format} files under another --dataset-slug",
            {"dataset_slug": slug},
        )
    return dataset, created


def _record_import(
    dataset: Dataset, created: bool, info: DatasetInfo, overrides: dict[str, str], checksum: str, changed: bool
) -> None:
    """Keep the Dataset row in step; an import that changed nothing leaves it untouched."""
    if created:
        return
    wanted = {"source": info.source, "checksum": checksum, **overrides}
    stale = {name: value for name, value in wanted.items() if getattr(dataset, name) != value}
    if not stale and not changed:
        return
    for name, value in stale.items():
        setattr(dataset, name, value)
    dataset.imported_at = timezone.now()
    dataset.save(update_fields=[*stale, "imported_at"])


def _batches(records: Iterator[PromptRecord], size: int) -> Iterator[list[PromptRecord]]:
    batch: list[PromptRecord] = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_records(
    dataset: Dataset, importer: Importer, total: int, progress: ImportProgress | None
) -> dict[str, LanguageCounts]:
    """Pass 2 (inside the transaction): upsert prompts and labels batch by batch."""
    counts: dict[str, LanguageCounts] = defaultdict(LanguageCounts)
    bar = _StageProgress(progress, "write", total, every=1)
    for batch in _batches(importer.records(), IMPORT_BATCH_SIZE):
        existing = _existing_prompts(dataset, batch)
        prompt_ids = _upsert_prompts(dataset, batch, existing, counts)
        _upsert_labels(batch, prompt_ids, [row[0] for row in existing.values()], counts)
        bar(len(batch))
    bar.finish()
    return counts


def _existing_prompts(dataset: Dataset, batch: list[PromptRecord]) -> dict[tuple[str, str], tuple]:
    ids_by_language: dict[str, list[str]] = defaultdict(list)
    for record in batch:
        ids_by_language[record.language].append(record.external_id)
    existing = {}
    for language, external_ids in ids_by_language.items():
        rows = Prompt.objects.filter(dataset=dataset, language_id=language, external_id__in=external_ids)
        for row in rows.values_list("id", "external_id", *PROMPT_FIELDS):
            existing[(language, row[1])] = row
    return existing


def _upsert_prompts(
    dataset: Dataset,
    batch: list[PromptRecord],
    existing: dict[tuple[str, str], tuple],
    counts: dict[str, LanguageCounts],
) -> dict[tuple[str, str], int]:
    prompt_ids: dict[tuple[str, str], int] = {}
    changed: list[Prompt] = []
    for record in batch:
        key = (record.language, record.external_id)
        values = (record.text, record.group_id, record.culturally_specific, record.is_toxic, record.metadata)
        old = existing.get(key)
        tally = counts[record.language]
        if old is None:
            tally.created += 1
        elif old[2:] != values:
            tally.updated += 1
        else:
            tally.unchanged += 1
            prompt_ids[key] = old[0]
            continue
        changed.append(
            Prompt(dataset=dataset, language_id=record.language, external_id=record.external_id,
                   **dict(zip(PROMPT_FIELDS, values, strict=True)))
        )
    if changed:
        # ON CONFLICT DO UPDATE returns every row's id on PostgreSQL and SQLite >= 3.35.
        Prompt.objects.bulk_create(
            changed, batch_size=IMPORT_BATCH_SIZE, update_conflicts=True,
            unique_fields=PROMPT_KEY, update_fields=PROMPT_FIELDS,
        )
        for prompt in changed:
            prompt_ids[(prompt.language_id, prompt.external_id)] = prompt.pk
        if any(pk is None for pk in prompt_ids.values()):  # a backend without RETURNING
            prompt_ids.update(
                ((language, external_id), pk)
                for pk, language, external_id in Prompt.objects.filter(
                    dataset=dataset, external_id__in=[p.external_id for p in changed]
                ).values_list("id", "language_id", "external_id")
            )
    return prompt_ids


def _upsert_labels(
    batch: list[PromptRecord],
    prompt_ids: dict[tuple[str, str], int],
    known_prompt_ids: list[int],
    counts: dict[str, LanguageCounts],
) -> None:
    old_labels = {}
    if known_prompt_ids:
        rows = PromptLabel.objects.filter(prompt_id__in=known_prompt_ids)
        for row in rows.values_list("prompt_id", "category_id", "source", *LABEL_FIELDS):
            old_labels[row[:3]] = row[3:]
    known = set(known_prompt_ids)
    added: list[tuple] = []  # rows in NEW_LABEL_COLUMNS order
    upserted: list[PromptLabel] = []
    for record in batch:
        prompt_id = prompt_ids[(record.language, record.external_id)]
        tally = counts[record.language]
        for label in record.labels:
            values = (label.value, list(label.rater_values), label.num_raters, label.scale_min, label.scale_max)
            old = old_labels.get((prompt_id, label.category, label.source))
            if old is None:
                tally.labels_created += 1
            elif old != values:
                tally.labels_updated += 1
            else:
                tally.labels_unchanged += 1
                continue
            if old is None and prompt_id not in known:
                added.append((prompt_id, label.category, label.source, *values))
            else:
                upserted.append(
                    PromptLabel(prompt_id=prompt_id, category_id=label.category, source=label.source,
                                **dict(zip(LABEL_FIELDS, values, strict=True)))
                )
    if added:
        _insert_new_labels(added)
    if upserted:
        PromptLabel.objects.bulk_create(
            upserted, batch_size=IMPORT_BATCH_SIZE, update_conflicts=True,
            unique_fields=LABEL_KEY, update_fields=LABEL_FIELDS,
        )


NEW_LABEL_COLUMNS = ["prompt_id", "category_id", "source", *LABEL_FIELDS]


def _insert_new_labels(rows: list[tuple]) -> None:
    """Labels of prompts created in this transaction: nothing can clash, so a plain insert.

    They are most of the rows of a first import (8 per prompt for RTP-LX and PTP). On
    PostgreSQL COPY writes them about five times faster than INSERT (bench/bench_import.py);
    elsewhere bulk_create does (DO NOTHING spares the RETURNING of ids we do not need).
    """
    with connection.cursor() as cursor:
        driver_cursor = getattr(cursor, "cursor", None)
        if connection.vendor == "postgresql" and hasattr(driver_cursor, "copy_expert"):
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            for row in rows:
                writer.writerow((*row[:4], json.dumps(row[4]), *row[5:]))
            buffer.seek(0)
            quote, meta = connection.ops.quote_name, PromptLabel._meta
            columns = ", ".join(quote(meta.get_field(name).column) for name in NEW_LABEL_COLUMNS)
            driver_cursor.copy_expert(
                f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer
            )
            return
    PromptLabel.objects.bulk_create(
        [PromptLabel(**dict(zip(NEW_LABEL_COLUMNS, row, strict=True))) for row in rows],
        batch_size=IMPORT_BATCH_SIZE, ignore_conflicts=True,
    )
