"""Scores made elsewhere (GPT-4, a vendor API, another lab's judge), imported from JSON Lines
so they are evaluated exactly like the platform's own scorers.

One prompt per line, referenced by language and external id in the dataset:

    {"language": "ar", "external_id": "17", "scores": {"toxicity": 4, "insult": 2}}
    {"language": "ar", "external_id": "17", "raw": "Toxic: 4\\nInsult: 2\\n..."}

- "scores": values on each category's own scale (RTP-LX: toxicity 1-5, the others 1-3);
  a number outside the scale, not a number, or an unknown category fails the import.
- "raw": a judge's reply in the RTP-LX rubric's format, read by the llm_judge parser
  (evaluation/scorers/judge_parser.py, `parse_reply(text, categories)`); a reply the parser
  rejects (a category missing, duplicated with two values, out of scale) is stored as
  invalid with the parser's reason, as the judge scorer itself does, and counted in the
  evaluation's `invalid`.

Every line is checked first and nothing is written until all are good: an unknown prompt,
a bad value or a malformed line fails with its line number and leaves the database as it
was. Then the whole set is written in one transaction.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction

from evaluation.scorer_trust.models import ImportedScore, ImportedScoreSet
from evaluation.scorers.measures import rating
from toxplatform.corpus.models import Dataset, HarmCategory, Prompt
from toxplatform.errors import ApplicationError

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
MAX_BYTES = 256 * 1024 * 1024
MAX_LINE = 1024 * 1024
MAX_RAW = 20_000


@dataclass
class ParsedLine:
    number: int
    language: str
    external_id: str
    values: dict[str, float | None]
    raw: dict[str, dict] = field(default_factory=dict)


def _line_error(number: int, message: str, **extra) -> ApplicationError:
    return ApplicationError(f"line {number}: {message}; nothing was imported", {"line": number, **extra})


def _judge_parser():
    try:
        from evaluation.scorers import judge_parser
    except ImportError:
        return None
    return judge_parser


def _parse_raw(number: int, text: str, scales: dict[str, tuple[int, int]]) -> tuple[dict, dict]:
    parser = _judge_parser()
    if parser is None:
        raise _line_error(number, 'the "raw" form needs the llm_judge reply parser '
                                  "(evaluation/scorers/judge_parser.py), which this installation does not have; "
                                  'give "scores" instead')
    # The rubric's categories that this platform has (the parser knows their scales).
    asked = [slug for slug in scales if slug in getattr(parser, "SCALES", scales)]
    parsed = parser.parse_reply(text, asked)
    values, raw = {}, {}
    for slug in asked:
        outcome = parsed.get(slug) if isinstance(parsed, dict) else None
        if isinstance(outcome, (int, float)) and not isinstance(outcome, bool) and math.isfinite(outcome):
            values[slug] = float(outcome)
            raw[slug] = {"reply": text[:2000]}
        else:
            values[slug] = None
            reason = getattr(outcome, "reason", None) or (outcome if isinstance(outcome, str) else "not parsed")
            raw[slug] = {"reason": str(reason)[:500], "reply": text[:2000]}
    return values, raw


def parse_lines(lines, scales: dict[str, tuple[int, int]]) -> list[ParsedLine]:
    """Check every line (no database access); the first problem raises with its line number."""
    parsed = []
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE:
            raise _line_error(number, f"longer than {MAX_LINE} characters")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            raise _line_error(number, f"not valid JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(obj, dict):
            raise _line_error(number, "each line must be a JSON object")
        unknown = sorted(set(obj) - {"language", "external_id", "scores", "raw"})
        if unknown:
            raise _line_error(number, f"unknown field(s) {', '.join(map(repr, unknown))} "
                                      "(expected language, external_id and scores or raw)")
        language, external_id = obj.get("language"), obj.get("external_id")
        if not isinstance(language, str) or not language:
            raise _line_error(number, '"language" must be a language code')
        if isinstance(external_id, int) and not isinstance(external_id, bool):
            external_id = str(external_id)
        if not isinstance(external_id, str) or not external_id:
            raise _line_error(number, '"external_id" must be the prompt\'s id in the dataset (text)')
        if ("scores" in obj) == ("raw" in obj):
            raise _line_error(number, 'give either "scores" or "raw" (one of them)')
        if "scores" in obj:
            scores = obj["scores"]
            if not isinstance(scores, dict) or not scores:
                raise _line_error(number, '"scores" must be an object {category: value}')
            values = {}
            for slug, value in scores.items():
                if slug not in scales:
                    raise _line_error(number, f"unknown harm category {slug!r}", known=", ".join(scales))
                low, high = scales[slug]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise _line_error(number, f"{slug}: the value must be a number (got {json.dumps(value)[:40]})")
                if not low <= value <= high:
                    raise _line_error(number, f"{slug}: {value:g} is outside its scale {low}-{high}")
                values[slug] = float(value)
            parsed.append(ParsedLine(number, language, external_id, values))
        else:
            text = obj["raw"]
            if not isinstance(text, str):
                raise _line_error(number, '"raw" must be the judge\'s reply as text')
            if len(text) > MAX_RAW:
                raise _line_error(number, f'"raw" is longer than {MAX_RAW} characters')
            values, raw = _parse_raw(number, text, scales)
            parsed.append(ParsedLine(number, language, external_id, values, raw))
    if not parsed:
        raise ApplicationError("The file holds no scores; nothing was imported")
    return parsed


def import_scores(path, *, name: str, dataset: str = "rtp-lx", replace: bool = False, user=None,
                  file_name: str = "") -> ImportedScoreSet:
    """Import a JSON Lines file of external scores as the set `name`, or raise ApplicationError
    (with the line number where a line is at fault) and write nothing."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise ApplicationError("The score file does not exist", {"path": str(path)}) from None
    _check_size(size)
    data = path.read_bytes()
    return import_scores_bytes(data, name=name, dataset=dataset, replace=replace, user=user,
                               file_name=file_name or path.name)


def import_scores_upload(upload, *, name: str, dataset: str = "rtp-lx", replace: bool = False,
                         user=None) -> ImportedScoreSet:
    """An uploaded file (page or API): its size is checked before it is read."""
    _check_size(upload.size)
    return import_scores_bytes(upload.read(), name=name, dataset=dataset, replace=replace, user=user,
                               file_name=upload.name)


def _check_size(size: int) -> None:
    if size > MAX_BYTES:
        raise ApplicationError(f"The score file is larger than {MAX_BYTES // 2**20} MiB", {"bytes": size})


def import_scores_bytes(data: bytes, *, name: str, dataset: str = "rtp-lx", replace: bool = False, user=None,
                        file_name: str = "") -> ImportedScoreSet:
    name = (name or "").strip()
    if not name or len(name) > 80 or not set(name) <= NAME_CHARS:
        raise ApplicationError("A scorer name for imported scores is 1-80 letters, digits, '.', '_' or '-'",
                               {"name": name[:100]})
    dataset_row = Dataset.objects.filter(slug=dataset).first()
    if dataset_row is None:
        raise ApplicationError(f"Unknown dataset {dataset!r}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise _line_error(line, "not UTF-8 text") from None
    scales = {slug: (int(round(low)), int(round(high)))
              for slug, low, high in HarmCategory.objects.values_list("slug", "scale_min", "scale_max")
              if high > low}
    # Lines end at "\n" only: a judge's reply may hold U+2028 or a CR (str.splitlines would cut there).
    parsed = parse_lines(text.split("\n"), scales)

    prompts = {}
    wanted = {(line.language, line.external_id) for line in parsed}
    languages = {language for language, _ in wanted}
    for prompt_id, language, external_id in Prompt.objects.filter(
        dataset=dataset_row, language_id__in=languages
    ).values_list("id", "language_id", "external_id").iterator(chunk_size=10_000):
        if (language, external_id) in wanted:
            prompts[(language, external_id)] = prompt_id
    seen: dict[tuple[int, str], int] = {}
    for line in parsed:
        prompt_id = prompts.get((line.language, line.external_id))
        if prompt_id is None:
            raise _line_error(line.number, f"no prompt {line.external_id!r} in language {line.language!r} "
                                           f"of dataset {dataset_row.slug!r}",
                              language=line.language, external_id=line.external_id)
        for slug in line.values:
            if (prompt_id, slug) in seen:
                raise _line_error(line.number, f"{slug} of prompt {line.language}/{line.external_id} was "
                                               f"already given on line {seen[(prompt_id, slug)]}")
            seen[(prompt_id, slug)] = line.number
    categories = sorted({slug for line in parsed for slug in line.values})
    with transaction.atomic():
        existing = ImportedScoreSet.objects.select_for_update().filter(dataset=dataset_row, name=name).first()
        if existing is not None:
            if not replace:
                raise ApplicationError(f"Imported scores named {name!r} exist already for {dataset_row.slug!r}; "
                                       "choose another name or replace them", {"name": name})
            existing.delete()
        score_set = ImportedScoreSet.objects.create(
            name=name, dataset=dataset_row, file_name=file_name[:300], sha256=hashlib.sha256(data).hexdigest(),
            lines=len(parsed), measures={slug: rating(*scales[slug]).as_json() for slug in categories},
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        ImportedScore.objects.bulk_create([
            ImportedScore(score_set=score_set, prompt_id=prompts[(line.language, line.external_id)], category=slug,
                          value=value, raw=line.raw.get(slug, {}))
            for line in parsed for slug, value in line.values.items()
        ], batch_size=5000)
    return score_set
