"""Checks of untrusted input, shared by pages, API, CLI and the job-parameter schema.

Each raises ApplicationError with a message that names the field and never echoes what it
must not (a path outside the allowed folders). One place per rule:

- `strict_int` / `parse_id`: a whole number written with ASCII digits ("²" and "١" pass
  str.isdigit() and then fail int() or mean something else).
- `check_text` / `check_name`: free text with a length cap; names without control or
  format characters (U+202E turns a name around on screen, ESC and BEL reach terminals).
- `resolve_inside`: a user-given path, resolved (~, .., symlinks) and kept inside allowed roots.
"""
from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from toxplatform.errors import ApplicationError

_ASCII_INT = re.compile(r"[+-]?[0-9]+")
# Longer than any int64: int() on a huge digit string is slow and nothing here needs more.
_MAX_INT_DIGITS = 19
NAME_MAX_SEGMENT = 255  # NAME_MAX of Linux file systems: a longer segment is ENAMETOOLONG
PATH_MAX = 4096


def strict_int(value, field: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An int from an int or an ASCII-digit string (query parameters, ids in URLs)."""
    if isinstance(value, bool):
        raise ApplicationError(f"{field} must be a whole number", {field: value})
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _ASCII_INT.fullmatch(value.strip()) and len(value.strip()) <= _MAX_INT_DIGITS:
        number = int(value.strip())
    else:
        shown = value if isinstance(value, (str, int, float)) and len(str(value)) <= 40 else type(value).__name__
        raise ApplicationError(f"{field} must be a whole number written with the digits 0-9", {field: shown})
    if minimum is not None and number < minimum or maximum is not None and number > maximum:
        bounds = f"between {minimum} and {maximum}" if minimum is not None and maximum is not None else (
            f"at least {minimum}" if minimum is not None else f"at most {maximum}")
        raise ApplicationError(f"{field} must be {bounds}", {field: number})
    return number


ID_MAX = 2**63 - 1  # bigint primary keys: a larger number is no row, not a database error


def parse_id(value, field: str = "id") -> int:
    """A primary key from a URL or query parameter."""
    return strict_int(value, field, minimum=1, maximum=ID_MAX)


def _bad_characters(text: str, allowed: str) -> list[str]:
    return sorted({
        f"U+{ord(char):04X}" for char in text
        if char not in allowed and unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn")
    })


def name_characters(text: str) -> list[str]:
    """What a name may not hold: control, format, private-use or unassigned characters (U+XXXX)."""
    return _bad_characters(text, allowed="")


def text_control_characters(text: str) -> list[str]:
    """What free text may not hold: control characters but tab and line breaks. Format
    characters (Cf) are left alone in free text: ZWJ / ZWNJ are needed by Persian, Hindi and emoji."""
    return sorted({f"U+{ord(c):04X}" for c in text if unicodedata.category(c) == "Cc" and c not in "\t\n\r"})


def check_text(value, field: str, *, max_length: int, multiline: bool = True) -> str:
    """Free text (instructions, descriptions): a string, at most max_length characters, no
    control characters but tab and line breaks."""
    if not isinstance(value, str):
        raise ApplicationError(f"{field} must be text", {field: type(value).__name__})
    if len(value) > max_length:
        raise ApplicationError(f"{field} is too long: at most {max_length} characters", {"length": len(value)})
    bad = text_control_characters(value)
    if not multiline and any(c in value for c in "\n\r"):
        bad.append("line breaks")
    if bad:
        raise ApplicationError(f"{field} contains control characters", {"characters": ", ".join(bad)})
    return value


def check_name(value, field: str, *, max_length: int) -> str:
    """A name shown in lists, tables, file names and terminals: one line, printable only
    (no control, format, private-use or unassigned characters)."""
    if not isinstance(value, str):
        raise ApplicationError(f"{field} must be text", {field: type(value).__name__})
    if len(value) > max_length:
        raise ApplicationError(f"{field} is too long: at most {max_length} characters", {"length": len(value)})
    bad = name_characters(value)
    if bad:
        raise ApplicationError(
            f"{field} contains control or invisible formatting characters", {"characters": ", ".join(bad)}
        )
    return value


def resolve_inside(raw, roots: Iterable[Path | str], *, what: str = "path") -> Path:
    """The real path `raw` names (~ expanded, symlinks followed), if it lies inside one of
    `roots`; else an ApplicationError that names the allowed roots but not the path.

    Relative paths are taken from the current directory (the CLI's). Nothing about a path
    outside the roots is revealed: not whether it exists, not what it holds.
    """
    if not isinstance(raw, (str, os.PathLike)):
        raise ApplicationError(f"the {what} must be text", {"got": type(raw).__name__})
    text = os.fspath(raw)
    if not text.strip():
        raise ApplicationError(f"no {what} given")
    if "\0" in text:
        raise ApplicationError(f"the {what} contains a NUL character")
    if len(text) > PATH_MAX or any(len(part.encode()) > NAME_MAX_SEGMENT for part in text.split("/")):
        raise ApplicationError(
            f"the {what} is too long (at most {NAME_MAX_SEGMENT} bytes per folder or file name)"
        )
    allowed = [Path(root).expanduser().resolve() for root in roots]
    known = {"allowed folders": ", ".join(str(root) for root in allowed) or "none configured"}
    try:
        path = Path(text).expanduser().resolve()  # strict=False: a missing tail is reported later
    except (OSError, RuntimeError):  # a symlink loop, an unreadable parent
        raise ApplicationError(f"the {what} cannot be resolved", known) from None
    if not any(path == root or path.is_relative_to(root) for root in allowed):
        raise ApplicationError(f"the {what} is outside the folders models may be loaded from", known)
    return path
