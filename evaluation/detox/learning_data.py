"""What the detox methods learn from: labelled texts from an imported dataset, or a file.

Default: the job's dataset (e.g. RTP-LX) split by each prompt's gold toxicity label
(`Prompt.is_toxic`), in the job's languages or in one chosen language (`data_language`);
balanced (as many toxic as non-toxic texts), drawn with `data_seed`, capped at `max_texts`
per label. That is what lets a method learn in the language it is evaluated in.

Or a JSON Lines file (`data_file`) inside one of settings.DETOX_DATA_ROOTS, one object a line:
    {"text": "...", "toxic": true}               a labelled text (toxic: true / false)
    {"toxic": "...", "nontoxic": "..."}          a steering pair (same meaning, toxic and not)
Both kinds may be mixed; a pair also counts as one toxic and one non-toxic text. The file is
read when the job is submitted (a bad line fails the submit) and again by the worker: its
content goes into the data fingerprint, so an edited file prepares a new artifact.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from django.conf import settings

from toxplatform.errors import ApplicationError
from toxplatform.params import Param

MAX_FILE_BYTES = 50 * 1024 * 1024


def data_params(max_texts: int = 128) -> tuple[Param, ...]:
    """The parameters every learning method shares (splat into its ParamSchema)."""
    return (
        Param("max_texts", int, max_texts, minimum=2, maximum=100_000,
              help="Texts per label (toxic and non-toxic, balanced) to learn from"),
        Param("data_language", str, "", max_length=35, single_line=True,
              help="Learn from the dataset's prompts in this language (empty: the job's languages)"),
        Param("data_file", str, "", max_length=1000, single_line=True,
              help="A JSON Lines file inside the detox data folders instead of the dataset "
                   '({"text", "toxic": true/false} or {"toxic", "nontoxic"} pairs)'),
        Param("data_seed", int, 0, minimum=0, maximum=2**31 - 1, help="Which texts are drawn"),
    )


DATA_PARAM_NAMES = ("max_texts", "data_language", "data_file", "data_seed")


def roots() -> list[Path]:
    return [Path(root).resolve() for root in settings.DETOX_DATA_ROOTS]


def resolve_data_file(value: str) -> Path:
    """The file's real path if it lies inside a data root and is a readable file."""
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = roots()[0] / path if roots() else path
    real = path.resolve()  # symlinks and .. resolved before the containment check
    if not any(real.is_relative_to(root) for root in roots()):
        raise ApplicationError(
            f"data file {value!r} is outside the detox data folders",
            {"allowed": ", ".join(str(root) for root in roots()) or "none (set TOXPLATFORM_DETOX_DATA_ROOTS)"},
        )
    if not real.is_file():
        raise ApplicationError(f"data file {value!r} does not exist (or is not a file)")
    if real.stat().st_size > MAX_FILE_BYTES:
        raise ApplicationError(f"data file {value!r} is larger than {MAX_FILE_BYTES // 2**20} MiB")
    return real


def read_jsonl(value: str) -> list[dict]:
    """The objects of a JSON Lines data file; a bad line names its number."""
    path = resolve_data_file(value)
    records = []
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise ApplicationError(f"data file {value!r} is not UTF-8 text") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ApplicationError(f"data file {value!r}, line {number}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ApplicationError(f"data file {value!r}, line {number}: expected an object")
        record["_line"] = number
        records.append(record)
    if not records:
        raise ApplicationError(f"data file {value!r} is empty")
    return records


def read_labelled_file(value: str) -> dict:
    """{"toxic": [...], "nontoxic": [...], "pairs": [[toxic, nontoxic], ...]} from a data file."""
    toxic, nontoxic, pairs = [], [], []
    for record in read_jsonl(value):
        where = f"data file {value!r}, line {record['_line']}"
        if isinstance(record.get("text"), str):
            if not isinstance(record.get("toxic"), bool):
                raise ApplicationError(f"{where}: a text needs \"toxic\": true or false")
            (toxic if record["toxic"] else nontoxic).append(record["text"])
        elif isinstance(record.get("toxic"), str) and isinstance(record.get("nontoxic"), str):
            pairs.append([record["toxic"], record["nontoxic"]])
        else:
            raise ApplicationError(f'{where}: expected {{"text", "toxic": bool}} or {{"toxic", "nontoxic"}} texts')
    return {"toxic": toxic + [p[0] for p in pairs], "nontoxic": nontoxic + [p[1] for p in pairs], "pairs": pairs}


def file_problem(value: str) -> str | None:
    """The parameter check: None when the file is readable and well formed."""
    if not value:
        return None
    try:
        data = read_labelled_file(value)
    except ApplicationError as error:
        return str(error)
    if len(data["toxic"]) < 2 or len(data["nontoxic"]) < 2:
        return "needs at least 2 toxic and 2 non-toxic texts"
    return None


def _languages(job, language: str) -> list[str]:
    if language:
        return [language]
    return list(job.languages or [])


def _prompt_texts(dataset_id: int, languages: list[str], toxic: bool) -> list[str]:
    from toxplatform.corpus.models import Prompt

    rows = Prompt.objects.filter(dataset_id=dataset_id, is_toxic=toxic).exclude(text="")
    if languages:
        rows = rows.filter(language_id__in=languages)
    return list(rows.order_by("id").values_list("text", flat=True))


def _draw(texts: list[str], count: int, rng: random.Random) -> list[str]:
    return rng.sample(texts, count) if count < len(texts) else list(texts)


def labelled_texts(job, params: dict) -> dict:
    """What a method learns from for a job (JSON-able: it is also the data fingerprint).

    {"source": ..., "toxic": [...], "nontoxic": [...], "pairs": [...]} with as many toxic as
    non-toxic texts, at most params["max_texts"] each, drawn with params["data_seed"].
    """
    rng = random.Random(params["data_seed"])
    if params["data_file"]:
        data = read_labelled_file(params["data_file"])
        count = min(params["max_texts"], len(data["toxic"]), len(data["nontoxic"]))
        pairs = _draw(data["pairs"], min(params["max_texts"], len(data["pairs"])), rng)
        source = {"file": str(resolve_data_file(params["data_file"]))}
        toxic, nontoxic = data["toxic"], data["nontoxic"]
    else:
        languages = _languages(job, params["data_language"])
        toxic = _prompt_texts(job.dataset_id, languages, True)
        nontoxic = _prompt_texts(job.dataset_id, languages, False)
        count = min(params["max_texts"], len(toxic), len(nontoxic))
        pairs = []
        source = {"dataset": job.dataset.slug, "languages": languages or "all"}
    if count < 2:
        raise ApplicationError("too little data to learn from: needs at least 2 toxic and 2 non-toxic texts", source)
    return {"source": source, "toxic": _draw(toxic, count, rng), "nontoxic": _draw(nontoxic, count, rng),
            "pairs": pairs}


def dataset_problem(params: dict, dataset, languages) -> str | None:
    """At submit time: does the dataset hold enough labelled prompts to learn from?"""
    if params.get("data_file") or dataset is None:
        return None
    chosen = [params["data_language"]] if params.get("data_language") else list(languages or [])
    counts = [len(_prompt_texts(dataset.pk, chosen, label)) for label in (True, False)]
    if min(counts) < 2:
        where = f"in {', '.join(chosen)}" if chosen else "in any language"
        return (
            f"dataset {dataset.slug!r} has {counts[0]} toxic and {counts[1]} non-toxic prompts {where}: "
            "a method that learns needs at least 2 of each (give data_language or data_file)"
        )
    return None


class LearningMethod:
    """Mixin for a DetoxMethod that learns from labelled texts (put it first in the bases).

    Preparation is keyed by `preparation_params` only: changing the steering strength
    reuses the prepared neurons / vectors / probes instead of computing them again.
    """

    requires_local_model = True
    needs_preparation = True
    preparation_params: tuple[str, ...] = DATA_PARAM_NAMES

    def check(self, params: dict) -> dict[str, str]:
        problems = super().check(params)
        if problem := file_problem(params.get("data_file", "")):
            problems["data_file"] = problem
        return problems

    def submit_problems(self, *, model, dataset, languages) -> list[str]:
        from evaluation.detox.anatomy import architecture_problem, layers_problem

        problems = list(super().submit_problems(model=model, dataset=dataset, languages=languages))
        if problem := architecture_problem(model, self.name):
            problems.append(problem)
        elif problem := layers_problem(model, self.params.get("layers")):
            problems.append(problem)
        if problem := dataset_problem(self.params, dataset, languages):
            problems.append(problem)
        return problems

    def params_fingerprint(self) -> str:
        from evaluation.detox.base import fingerprint_json

        kept = {name: self.params[name] for name in self.preparation_params if name in self.params}
        return fingerprint_json({"method": self.name, "params": kept})

    def preparation_data(self, job) -> dict:
        return labelled_texts(job, self.params)

    def data_summary(self, data) -> dict | None:
        if not isinstance(data, dict) or "source" not in data:
            return None
        return {**data["source"], "toxic_texts": len(data["toxic"]), "nontoxic_texts": len(data["nontoxic"]),
                "pairs": len(data.get("pairs") or [])}
