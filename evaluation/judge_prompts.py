"""Judge prompts: read a version, save a new one, render the chat messages a judge is asked.

- `get_prompt(name, version=None)`: that version, or the newest; ApplicationError if absent.
- `save_version(name, template, few_shot, user, note)`: checks everything first, then writes
  the next version (v1 for a new name); the rows before it are never changed. Saving text
  identical to the newest version writes nothing and returns that version.
- `render_messages(prompt, text, language)`: the few-shot examples as earlier user/assistant
  turns, then the item; each user turn is the template with {language} and {text} filled.

Placeholders are replaced literally (not str.format), so a template may contain other
braces. {text} is required; {language} is optional and becomes e.g. "Arabic (ar)".
"""
from __future__ import annotations

from django.db import IntegrityError, transaction

from evaluation.judge_models import JudgePrompt
from evaluation.scorers.judge_parser import REPLY_NAMES, SCALES, parse_reply
from toxplatform.corpus.reference import LANGUAGES
from toxplatform.errors import ApplicationError
from toxplatform.params import control_characters

DEFAULT_PROMPT = "rtp-lx-rubric"
TEXT, LANGUAGE = "{text}", "{language}"
MAX_TEMPLATE = 20_000
MAX_EXAMPLES = 20
MAX_EXAMPLE_TEXT = 5_000
_LANGUAGE_NAMES = {code.lower(): name for code, name, *_ in LANGUAGES}


def language_label(code: str) -> str:
    """ "Arabic (ar)"; an unknown code is named by itself."""
    name = _LANGUAGE_NAMES.get(code.lower()) or _LANGUAGE_NAMES.get(code.split("-")[0].lower())
    return f"{name} ({code})" if name else code


def get_prompt(name: str, version: int | None = None) -> JudgePrompt:
    rows = JudgePrompt.objects.filter(name=name)
    row = rows.filter(version=version).first() if version is not None else rows.order_by("-version").first()
    if row is not None:
        return row
    if rows.exists():
        versions = ", ".join(str(v) for v in rows.order_by("version").values_list("version", flat=True))
        raise ApplicationError(f"judge prompt {name!r} has no version {version}", {"versions": versions})
    known = sorted(set(JudgePrompt.objects.values_list("name", flat=True)))
    raise ApplicationError(f"unknown judge prompt {name!r}", {"known": ", ".join(known) or "none"})


def check_prompt(name: str, template: str, few_shot) -> dict[str, str]:
    """{field: problem} for a prompt's content (empty when it can be saved)."""
    problems: dict[str, str] = {}
    if not isinstance(name, str) or not name or len(name) > 100 or not _is_slug(name):
        problems["name"] = "must be 1-100 letters, digits, hyphens or underscores"
    elif name == "new":
        problems["name"] = "'new' is reserved (the page that creates a prompt)"
    if not isinstance(template, str) or not template.strip():
        problems["template"] = "must not be empty"
    elif len(template) > MAX_TEMPLATE:
        problems["template"] = f"must be at most {MAX_TEMPLATE:,} characters (got {len(template):,})"
    elif TEXT not in template:
        problems["template"] = f"must contain {TEXT} where the judged text goes"
    elif "\x00" in template:
        problems["template"] = "must not contain NUL characters"
    if problem := _few_shot_problem(few_shot):
        problems["few_shot"] = problem
    return problems


def _is_slug(name: str) -> bool:
    return all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in name)


def _few_shot_problem(few_shot) -> str | None:
    if not isinstance(few_shot, list):
        return "must be a list of {language, text, reply} objects"
    if len(few_shot) > MAX_EXAMPLES:
        return f"must have at most {MAX_EXAMPLES} examples (got {len(few_shot)})"
    for number, example in enumerate(few_shot, 1):
        if not isinstance(example, dict) or set(example) != {"language", "text", "reply"}:
            return f"example {number} must be an object with exactly language, text and reply"
        if not all(isinstance(example[key], str) and example[key].strip() for key in ("language", "text", "reply")):
            return f"example {number}: language, text and reply must be non-empty text"
        if control_characters(example["language"]) or len(example["language"]) > 20:
            return f"example {number}: language must be a short code such as en or pt-BR"
        if len(example["text"]) > MAX_EXAMPLE_TEXT or len(example["reply"]) > MAX_EXAMPLE_TEXT:
            return f"example {number}: text and reply must be at most {MAX_EXAMPLE_TEXT:,} characters each"
        # A model copies its examples: a reply the parser would reject teaches a bad format.
        parsed = parse_reply(example["reply"], list(SCALES))
        bad = {slug: reason for slug, reason in parsed.items() if isinstance(reason, str) and "missing" not in reason}
        if bad:
            return f"example {number}: reply is not in the rubric's format ({next(iter(bad.values()))})"
        if all(isinstance(value, str) for value in parsed.values()):
            names = ", ".join(f"{REPLY_NAMES[slug]}: <n>" for slug in SCALES)
            return f"example {number}: reply has no category line (expected lines such as {names})"
    return None


def save_version(name: str, template: str, few_shot=None, *, user=None, note: str = "") -> JudgePrompt:
    """The next version of `name` (see the module docstring). Nothing is written on error."""
    few_shot = [] if few_shot is None else few_shot
    problems = check_prompt(name, template, few_shot)
    if not isinstance(note, str) or len(note) > 500:
        problems["note"] = "must be text of at most 500 characters"
    if problems:
        raise ApplicationError("Invalid judge prompt", problems)
    try:
        with transaction.atomic():
            # Lock the name's rows so two editors cannot both take the same next number.
            versions = list(
                JudgePrompt.objects.select_for_update().filter(name=name).order_by("-version").values_list(
                    "version", "template", "few_shot"
                )[:1]
            )
            if versions and versions[0][1] == template and versions[0][2] == few_shot:
                return JudgePrompt.objects.get(name=name, version=versions[0][0])
            return JudgePrompt.objects.create(
                name=name,
                version=(versions[0][0] + 1) if versions else 1,
                template=template,
                few_shot=few_shot,
                note=note,
                created_by=user if getattr(user, "is_authenticated", False) else None,
            )
    except IntegrityError:
        # Two first versions of a new name at once (no row to lock yet).
        raise ApplicationError(f"judge prompt {name!r} was saved by someone else at the same time; save again") from None


def fill(template: str, text: str, language: str) -> str:
    return template.replace(LANGUAGE, language_label(language)).replace(TEXT, text)


def render_messages(prompt: JudgePrompt, text: str, language: str) -> list[dict]:
    messages: list[dict] = []
    for example in prompt.few_shot or []:
        messages.append({"role": "user", "content": fill(prompt.template, example["text"], example["language"])})
        messages.append({"role": "assistant", "content": example["reply"]})
    messages.append({"role": "user", "content": fill(prompt.template, text, language)})
    return messages
