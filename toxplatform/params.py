"""Declared parameters: each one defined once — type, default, bounds, help — and used by the
service that checks it, the form that shows it, the API serializer, the CLI, and the docs.

    SCHEMA = ParamSchema(
        Param("alpha", float, 0.5, minimum=0, maximum=10, help="steering strength"),
        Param("layer", int, None, optional=True, minimum=0, help="decoder layer; empty: the middle one"),
    )
    values = SCHEMA.clean({"alpha": 2})        # -> {"alpha": 2.0, "layer": None}
    SCHEMA.clean({"alpha": -1})                # ApplicationError: {"alpha": "must be at least 0 (got -1)"}

Messages are made here and nowhere else, so the API, the form and the CLI reject the same
out-of-range value with the same words. Interfaces may convert text to a number first
(a form's "Enter a whole number."), but a bound is only ever checked by `Param.clean`.
"""
from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from toxplatform.errors import ApplicationError

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
# Text fields: free text is capped (it is stored and shown everywhere); names are single-line.
DEFAULT_MAX_LENGTH = 10_000

KINDS = (int, float, bool, str, list, dict)


class ParamProblem(ValueError):
    """One parameter's value is wrong; the message says how (no parameter name in it)."""


def control_characters(text: str) -> list[str]:
    """Control and format characters (ESC, BEL, U+202E RIGHT-TO-LEFT OVERRIDE...) in a text,
    as U+XXXX: they reorder or hide what a reader sees and have no place in a name."""
    return sorted({f"U+{ord(ch):04X}" for ch in text if unicodedata.category(ch) in ("Cc", "Cf")})


@dataclass(frozen=True)
class Param:
    name: str
    kind: type
    default: Any = None
    help: str = ""
    label: str = ""
    minimum: float | None = None
    maximum: float | None = None
    # True: the bound itself is not allowed (top_p > 0).
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: tuple = ()
    optional: bool = False  # None is a value ("empty = all")
    required: bool = False  # no default: the caller must give it
    max_length: int | None = None  # str: characters; list: items
    single_line: bool = False  # str: no control or format characters (names, keys)
    item_kind: type | None = None  # list: the type of each item
    cli: str = ""  # the command-line flag when it is not --name-with-dashes
    # Extra rule on a value that passed the checks above: returns a problem or None.
    rule: Callable[[Any], str | None] | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise TypeError(f"parameter {self.name}: kind must be one of {KINDS}")

    # --- what it is -----------------------------------------------------------------------
    @property
    def flag(self) -> str:
        return self.cli or "--" + self.name.replace("_", "-")

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def bounds_text(self) -> str:
        """The allowed values in words, e.g. "1 to 1000", "in (0, 1]", "one of >=, >"."""
        if self.choices:
            return "one of " + ", ".join(str(choice) for choice in self.choices)
        if self.minimum is None and self.maximum is None:
            return ""
        both = self.minimum is not None and self.maximum is not None
        if self.exclusive_minimum or self.exclusive_maximum or (both and self.kind is float):
            low = "(" if self.exclusive_minimum else "["
            high = ")" if self.exclusive_maximum else "]"
            return f"in {low}{_num(self.minimum, '-inf')}, {_num(self.maximum, 'inf')}{high}"
        if self.maximum is None:
            return f"at least {_num(self.minimum)}"
        if self.minimum is None:
            return f"at most {_num(self.maximum)}"
        return f"{_num(self.minimum)} to {_num(self.maximum)}"

    def describe(self) -> dict:
        """A JSON-able description (API schema, docs, the job form's method/scorer help)."""
        out = {"name": self.name, "type": self.kind.__name__, "default": self.default, "help": self.help}
        if bounds := self.bounds_text():
            out["allowed"] = bounds
        if self.optional:
            out["optional"] = True
        return out

    def help_text(self) -> str:
        """Help with its bounds and default, for forms and --help."""
        parts = [self.help.rstrip(".")] if self.help else []
        if bounds := self.bounds_text():
            parts.append(bounds[0].upper() + bounds[1:])
        if not self.required and self.default is not None and self.kind not in (list, dict):
            parts.append(f"default {self.default}")
        return ". ".join(parts) + ("." if parts else "")

    # --- checking -------------------------------------------------------------------------
    def clean(self, value: Any) -> Any:
        """The value, converted where lossless (int -> float), or ParamProblem."""
        if value is None:
            if self.optional:
                return None
            raise ParamProblem("is required" if self.required else "must not be empty")
        value = self._typed(value)
        if self.choices and value not in self.choices:
            raise ParamProblem(f"must be {self.bounds_text()} (got {value!r})")
        if self.kind in (int, float) and not self._in_bounds(value):
            raise ParamProblem(f"must be {self.bounds_text()} (got {value!r})")
        if self.max_length is not None and self.kind in (str, list) and len(value) > self.max_length:
            unit = "characters" if self.kind is str else "items"
            raise ParamProblem(f"must be at most {self.max_length} {unit} (got {len(value)})")
        if self.kind is str:
            _check_text(value, single_line=self.single_line)
        if self.rule is not None and (problem := self.rule(value)):
            raise ParamProblem(problem)
        return value

    def _typed(self, value: Any) -> Any:
        kind = self.kind
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if ok:
                value = float(value)
        else:
            ok = isinstance(value, kind)
        if not ok:
            raise ParamProblem(f"must be {_kind_words(kind)} (got {_short_repr(value)})")
        if kind is list and self.item_kind is not None:
            for item in value:
                if not isinstance(item, self.item_kind) or isinstance(item, bool) != (self.item_kind is bool):
                    raise ParamProblem(
                        f"must be a list of {_kind_words(self.item_kind)} (got {_short_repr(item)} in it)"
                    )
                if isinstance(item, str):
                    _check_text(item, single_line=True)
        return value

    def _in_bounds(self, value: float) -> bool:
        if self.minimum is not None and (value < self.minimum or (self.exclusive_minimum and value == self.minimum)):
            return False
        if self.maximum is not None and (value > self.maximum or (self.exclusive_maximum and value == self.maximum)):
            return False
        return True


class ParamSchema:
    """An ordered set of Params plus cross-field rules."""

    def __init__(self, *params: Param, checks: tuple[Callable[[dict], dict[str, str]], ...] = ()):
        self.params: dict[str, Param] = {}
        for param in params:
            if param.name in self.params:
                raise ValueError(f"parameter {param.name!r} is declared twice")
            self.params[param.name] = param
        # Each check gets the cleaned values and returns {field: problem} (empty when fine).
        self.checks = checks

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params.values())

    def __getitem__(self, name: str) -> Param:
        return self.params[name]

    def __contains__(self, name: str) -> bool:
        return name in self.params

    def __len__(self) -> int:
        return len(self.params)

    def names(self) -> list[str]:
        return list(self.params)

    def defaults(self) -> dict[str, Any]:
        return {param.name: param.default for param in self if not param.required}

    def describe(self) -> list[dict]:
        return [param.describe() for param in self]

    def problems(self, values: Mapping[str, Any], *, only: tuple[str, ...] | None = None) -> tuple[dict, dict]:
        """(cleaned values, {field: problem}) for the given values plus defaults. `only` limits
        which parameters are checked (callers that check the rest themselves)."""
        cleaned: dict[str, Any] = {}
        problems: dict[str, str] = {}
        if not isinstance(values, Mapping):
            return {}, {"parameters": f"must be an object (got {_short_repr(values)})"}
        for name in sorted(set(values) - set(self.params)):
            problems[name] = f"is not a known parameter (accepted: {', '.join(self.params) or 'none'})"
        for param in self:
            if only is not None and param.name not in only:
                continue
            if param.name not in values:
                if param.required:
                    problems[param.name] = "is required"
                    continue
                cleaned[param.name] = _copy(param.default)
                continue
            try:
                cleaned[param.name] = param.clean(values[param.name])
            except ParamProblem as problem:
                problems[param.name] = str(problem)
        if not problems and only is None:
            for check in self.checks:
                problems.update(check(cleaned))
        return cleaned, problems

    def clean(self, values: Mapping[str, Any], *, title: str = "Invalid parameters") -> dict[str, Any]:
        """Checked values with defaults filled in, or one ApplicationError naming every problem."""
        cleaned, problems = self.problems(values)
        if problems:
            raise ApplicationError(title, problems)
        return cleaned


def parameters_error(title: str, problems: dict[str, str], **extra) -> ApplicationError:
    """One error for a method's or scorer's own parameters, every problem in its message
    ("alpha must be in [0, 1] (got 2.0); layers is not a known parameter (...)"): these sit
    inside one field of a job, so the message is what a form or a CLI shows."""
    listed = "; ".join(f"{name} {problem}" for name, problem in problems.items())
    return ApplicationError(f"{title}: {listed}", {key: value for key, value in extra.items() if value})


def _check_text(value: str, *, single_line: bool) -> None:
    if "\x00" in value:
        raise ParamProblem("must not contain NUL characters")
    if single_line and (found := control_characters(value)):
        raise ParamProblem(f"must not contain control or format characters ({', '.join(found)})")


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value


def _kind_words(kind: type) -> str:
    return {int: "a whole number", float: "a number", bool: "true or false", str: "text", list: "a list",
            dict: "an object"}[kind]


def _num(value: float | None, missing: str = "") -> str:
    if value is None:
        return missing
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else f"{value:g}"


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"

