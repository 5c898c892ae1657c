"""Dataset importers: one file per format behind a small registry (format name -> class).

A new format is a new module with an `Importer` subclass plus one line in IMPORTERS.
"""
from toxplatform.corpus.importers.base import (
    Catalog,
    DatasetInfo,
    Importer,
    LabelRecord,
    Location,
    PromptRecord,
    RecordError,
)
from toxplatform.corpus.importers.csv_table import CsvImporter
from toxplatform.corpus.importers.jsonl import JsonlImporter
from toxplatform.corpus.importers.ptp import PtpImporter
from toxplatform.corpus.importers.rtp import RtpImporter
from toxplatform.corpus.importers.rtp_lx import RtpLxImporter
from toxplatform.errors import ApplicationError

IMPORTERS: dict[str, type[Importer]] = {
    cls.format_name: cls for cls in (RtpLxImporter, RtpImporter, PtpImporter, JsonlImporter, CsvImporter)
}


def get_importer(format_name: str) -> type[Importer]:
    try:
        return IMPORTERS[format_name]
    except KeyError:
        raise ApplicationError(
            f"Unknown dataset format {format_name!r}; known formats: {', '.join(IMPORTERS)}",
            {"format": format_name},
        ) from None


__all__ = [
    "IMPORTERS",
    "Catalog",
    "DatasetInfo",
    "Importer",
    "LabelRecord",
    "Location",
    "PromptRecord",
    "RecordError",
    "get_importer",
]
