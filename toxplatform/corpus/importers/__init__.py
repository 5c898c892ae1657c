"""Dataset importers: one file per format behind a small registry (format name -> class).

A new format is a new module with an `Importer` subclass plus one line in IMPORTERS.
IMPORTERS is the platform's one registry kind (toxplatform.registry), keyed by `format_name`.
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
from toxplatform.registry import Registry

IMPORTERS = Registry("dataset format", key="format_name")
for _importer in (RtpLxImporter, RtpImporter, PtpImporter, JsonlImporter, CsvImporter):
    IMPORTERS.register(_importer)


def get_importer(format_name: str) -> type[Importer]:
    return IMPORTERS.get(format_name)


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
