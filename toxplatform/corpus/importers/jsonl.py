"""Any JSON Lines file, read through a column mapping (see mapping.py)."""
from __future__ import annotations

from toxplatform.corpus.importers.base import read_jsonl
from toxplatform.corpus.importers.mapping import MappedImporter


class JsonlImporter(MappedImporter):
    format_name = "jsonl"
    summary = "any JSON Lines file, with --map FIELD=COLUMN (dotted paths reach nested objects)"
    typed = True
    suffixes = (".jsonl", ".json", ".ndjson")

    def read_rows(self, path, progress):
        return read_jsonl(path, progress)
