"""RealToxicityPrompts (Gehman et al., 2020): English JSON Lines with Perspective API scores.

    {"filename": "0766186-....txt", "begin": 340, "end": 564, "challenging": false,
     "prompt": {"text": "...", "toxicity": 0.29, "severe_toxicity": ..., ...},
     "continuation": {"text": "...", "toxicity": 0.06, ...}}
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from toxplatform.corpus.importers.base import (
    MAX_ID_LENGTH,
    ByteProgress,
    DatasetInfo,
    Importer,
    PromptRecord,
    Row,
    read_jsonl,
)
from toxplatform.corpus.importers.perspective import ATTRIBUTES, perspective_labels, toxic_by_score

LANGUAGE = "en"


class RtpImporter(Importer):
    format_name = "rtp"
    summary = "RealToxicityPrompts prompts.jsonl (English, Perspective API scores)"

    def dataset_info(self) -> DatasetInfo:
        return DatasetInfo(
            slug="rtp",
            name="RealToxicityPrompts",
            license="Apache-2.0",
            source=str(self.path.resolve()),
            description="100k English web sentence prefixes with Perspective API scores (Gehman et al., 2020).",
        )

    def files(self) -> list[Path]:
        return self.data_files((".jsonl", ".json"))

    def records(self, progress: ByteProgress | None = None) -> Iterator[PromptRecord]:
        if not self.wants(LANGUAGE):
            return
        for path in self.files():
            for location, obj in read_jsonl(path, progress):
                yield self._record(Row(location, obj, typed=True))

    def _record(self, row: Row) -> PromptRecord:
        prompt = row.child("prompt", required=True)
        text = prompt.text("text")
        labels = perspective_labels(prompt, {attribute: attribute for attribute in ATTRIBUTES})
        metadata: dict = {}
        challenging = row.boolean("challenging")
        if challenging is not None:
            metadata["challenging"] = challenging
        continuation = row.child("continuation")
        if continuation is not None:
            continuation_text = continuation.text("text", required=False)
            if continuation_text is not None:
                metadata["continuation"] = continuation_text
            scores = {a: continuation.number(a, low=0, high=1) for a in ATTRIBUTES}
            scores = {a: v for a, v in scores.items() if v is not None}
            if scores:
                metadata["continuation_scores"] = scores
        external_id = self._external_id(row, metadata)
        return PromptRecord(
            location=row.location,
            language=LANGUAGE,
            external_id=external_id,
            text=text,
            is_toxic=toxic_by_score(labels),
            metadata=metadata,
            labels=labels,
            id_field="filename" if "source_document" in metadata else "(line number)",
        )

    @staticmethod
    def _external_id(row: Row, metadata: dict) -> str:
        """The source span (file:begin-end) is RTP's identity; the line number when it is absent."""
        filename = row.identifier("filename", required=False)
        if filename is None:
            return f"line-{row.location.line}"
        begin = row.number("begin")
        end = row.number("end")
        for name, value in (("begin", begin), ("end", end)):
            if value is not None and not value.is_integer():
                raise row.error(name, f"expected a whole number, got {value:g}")
        metadata["source_document"] = filename
        if begin is None or end is None:
            return filename
        external_id = f"{filename}:{int(begin)}-{int(end)}"
        if len(external_id) > MAX_ID_LENGTH:
            raise row.error("filename", f"the id {external_id!r} is longer than {MAX_ID_LENGTH} characters")
        return external_id
