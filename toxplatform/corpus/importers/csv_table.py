"""Any CSV file with a header row, read through a column mapping (see mapping.py)."""
from __future__ import annotations

from toxplatform.corpus.importers.base import read_csv
from toxplatform.corpus.importers.mapping import MappedImporter


class CsvImporter(MappedImporter):
    format_name = "csv"
    summary = "any CSV file with a header row, with --map FIELD=COLUMN"
    typed = False
    suffixes = (".csv",)

    def read_rows(self, path, progress):
        return read_csv(path, progress)
