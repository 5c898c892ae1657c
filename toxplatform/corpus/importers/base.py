"""What every importer shares: record shapes, the reference catalog, strict row readers, file readers.

An importer turns files into `PromptRecord`s and raises `RecordError` (an ApplicationError
naming file, line and field) at the first bad one. It never touches the database: the
service in `corpus/services.py` reads the records twice, once to check them all and once
to write them in a single transaction.
"""
from __future__ import annotations

import codecs
import csv
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from toxplatform.errors import ApplicationError

# Called with the number of bytes just read, so a progress bar can follow the files.
ByteProgress = Callable[[int], None]

# Column sizes of Prompt (external_id, group_id).
MAX_ID_LENGTH = 100

_MISSING = object()
_NUMBER_TYPES = frozenset({int, float})


@dataclass(frozen=True, slots=True)
class Location:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}, line {self.line}"


class RecordError(ApplicationError):
    """One bad record: the message says where (file, line, field) and what is wrong."""

    def __init__(self, location: Location, field_name: str | None, problem: str):
        where = str(location) + (f', field "{field_name}"' if field_name else "")
        super().__init__(
            f"{where}: {problem}",
            {"file": location.file, "line": location.line, "field": field_name or ""},
        )
        self.location = location
        self.field_name = field_name


@dataclass(frozen=True, slots=True)
class LabelRecord:
    category: str
    value: float
    source: str
    scale_min: float
    scale_max: float
    rater_values: tuple[float, ...] = ()

    @property
    def num_raters(self) -> int:
        return len(self.rater_values)


@dataclass(slots=True)
class PromptRecord:
    location: Location
    language: str
    external_id: str
    text: str
    group_id: str = ""
    culturally_specific: bool = False
    is_toxic: bool | None = None
    metadata: dict = field(default_factory=dict)
    labels: list[LabelRecord] = field(default_factory=list)
    # Where the id came from, for error messages ("Index", "id", "(line number)").
    id_field: str = "id"


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    slug: str
    name: str
    version: str = ""
    license: str = ""
    source: str = ""
    description: str = ""


@dataclass(frozen=True)
class Catalog:
    """The languages and harm categories the database knows (seeded from reference.py)."""

    languages: Mapping[str, str]  # casefolded code -> code as stored
    categories: Mapping[str, tuple[float, float]]  # slug -> (scale_min, scale_max)

    @classmethod
    def load(cls) -> Catalog:
        from toxplatform.corpus.models import HarmCategory, Language

        return cls(
            languages={code.casefold(): code for code in Language.objects.values_list("code", flat=True)},
            categories={
                slug: (lo, hi) for slug, lo, hi in HarmCategory.objects.values_list("slug", "scale_min", "scale_max")
            },
        )

    def language_code(self, raw: str) -> str | None:
        """`PT`, `zh_hans` and `zh-Hans` all name a stored language; None when unknown."""
        return self.languages.get(raw.strip().replace("_", "-").casefold())

    def resolve_languages(self, codes: list[str] | None) -> frozenset[str] | None:
        if not codes:
            return None
        resolved, unknown = set(), []
        for raw in codes:
            code = self.language_code(raw)
            if code is None:
                unknown.append(raw)
            else:
                resolved.add(code)
        if unknown:
            raise ApplicationError(
                f"Unknown language code(s): {', '.join(unknown)}. Known codes are the BCP-47 tags of the "
                "Language table (e.g. de, pt, zh-Hans); a new language needs a row in corpus/reference.py.",
                {"languages": ",".join(unknown)},
            )
        return frozenset(resolved)


class Row:
    """One source record with strict, typed accessors that fail with file, line and field.

    `typed` rows come from JSON (a number must be a JSON number); untyped rows come from
    CSV (every cell is text and is parsed, an empty cell counts as missing).
    Dotted names reach into nested JSON objects: "prompt.text".
    """

    __slots__ = ("location", "data", "typed", "prefix")

    def __init__(self, location: Location, data: Mapping[str, Any], typed: bool, prefix: str = ""):
        self.location = location
        self.data = data
        self.typed = typed
        self.prefix = prefix  # where a child row sits in its record, for error messages

    def error(self, field_name: str | None, problem: str) -> RecordError:
        return RecordError(self.location, f"{self.prefix}{field_name}" if field_name else None, problem)

    def child(self, name: str, *, required: bool = False) -> Row | None:
        """The nested object `name` as a row of its own (errors still name "name.field")."""
        mapping = self.mapping(name, required=required)
        return None if mapping is None else Row(self.location, mapping, self.typed, f"{self.prefix}{name}.")

    def get(self, name: str, default: Any = None) -> Any:
        """The raw value, or `default` when the field (or a parent object) is absent or null/empty."""
        value = self._lookup(name)
        if value is _MISSING or value is None or (not self.typed and value == ""):
            return default
        return value

    def has(self, name: str) -> bool:
        return self.get(name, _MISSING) is not _MISSING

    def _lookup(self, name: str) -> Any:
        if name in self.data or not self.typed:
            return self.data.get(name, _MISSING)
        value: Any = self.data
        for part in name.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return _MISSING
            value = value[part]
        return value

    def text(self, name: str, *, required: bool = True) -> str | None:
        # In JSON a present "" is a (legitimate) empty prompt; in CSV an empty cell is missing.
        value = self.get(name, _MISSING)
        if value is _MISSING:
            if required:
                raise self.error(name, "missing (a text value is required)")
            return None
        if not isinstance(value, str):
            raise self.error(name, f"expected text, got {describe(value)}")
        check_storable_text(self, name, value)
        return value

    def number(self, name: str, *, required: bool = False, low: float | None = None,
               high: float | None = None) -> float | None:
        value = self.get(name, _MISSING)
        if value is _MISSING:
            if required:
                raise self.error(name, "missing (a number is required)")
            return None
        number = self._as_number(name, value)
        if (low is not None and number < low) or (high is not None and number > high):
            raise self.error(name, f"{number:g} is outside the scale {low:g}-{high:g}")
        return number

    def _as_number(self, name: str, value: Any) -> float:
        if self.typed:
            # bool is an int in Python; true/false is not a score.
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.error(name, f"expected a number, got {describe(value)}")
            if not math.isfinite(value):  # 1e999 parses to inf
                raise self.error(name, f"expected a finite number, got {value!r}")
            return float(value)
        try:
            number = float(value.strip())
        except ValueError:
            raise self.error(name, f"expected a number, got {value!r}") from None
        if not math.isfinite(number):
            raise self.error(name, f"expected a finite number, got {value!r}")
        return number

    def number_list(self, name: str, *, required: bool = False, low: float | None = None,
                    high: float | None = None) -> list[float] | None:
        value = self.get(name, _MISSING)
        if value is _MISSING:
            if required:
                raise self.error(name, "missing (a list of numbers is required)")
            return None
        if not self.typed:
            # A CSV cell holds the list as JSON ("[1, 2, 3]") or separated by | or ;.
            cell = value.strip()
            try:
                value = json.loads(cell) if cell.startswith("[") else [
                    part for part in cell.replace(";", "|").split("|")
                ]
            except ValueError:
                raise self.error(name, f"expected a list of numbers, got {cell!r}") from None
        if not isinstance(value, list) or not value:
            raise self.error(name, f"expected a non-empty list of numbers, got {describe(value)}")
        # Fast path (the usual case: three JSON ratings in range); the loop below says what is wrong.
        if (all(type(item) in _NUMBER_TYPES for item in value) and all(map(math.isfinite, value))
                and (low is None or min(value) >= low) and (high is None or max(value) <= high)):
            return value
        numbers = []
        for item in value:
            if isinstance(item, str) and not self.typed:
                item = item.strip()
                try:
                    item = float(item)
                except ValueError:
                    raise self.error(name, f"expected a list of numbers, found {item!r}") from None
            if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
                raise self.error(name, f"expected a list of numbers, found {describe(item)}")
            if (low is not None and item < low) or (high is not None and item > high):
                raise self.error(name, f"rating {item:g} is outside the scale {low:g}-{high:g}")
            numbers.append(item)
        return numbers

    _TRUE = frozenset({"true", "1", "yes", "y", "t"})
    _FALSE = frozenset({"false", "0", "no", "n", "f"})

    def boolean(self, name: str, *, required: bool = False) -> bool | None:
        value = self.get(name, _MISSING)
        if value is _MISSING:
            if required:
                raise self.error(name, "missing (true or false is required)")
            return None
        if self.typed:
            if not isinstance(value, bool):
                raise self.error(name, f"expected true or false, got {describe(value)}")
            return value
        word = value.strip().casefold()
        if word in self._TRUE:
            return True
        if word in self._FALSE:
            return False
        raise self.error(name, f"expected true or false, got {value!r}")

    def identifier(self, name: str, *, required: bool = True) -> str | None:
        """An id: text or a whole number (JSON files mix "12" and 12), at most 100 characters."""
        value = self.get(name, _MISSING)
        if value is _MISSING:
            if required:
                raise self.error(name, "missing (an id is required)")
            return None
        if self.typed and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise self.error(name, f"expected an id (text or whole number), got {describe(value)}")
        value = value.strip()
        if not value:
            raise self.error(name, "the id is empty")
        if len(value) > MAX_ID_LENGTH:
            raise self.error(name, f"the id is {len(value)} characters long; at most {MAX_ID_LENGTH} fit")
        check_storable_text(self, name, value)
        return value

    def mapping(self, name: str, *, required: bool = False) -> Mapping[str, Any] | None:
        value = self.get(name, _MISSING)
        if value is _MISSING:
            if required:
                raise self.error(name, "missing (an object is required)")
            return None
        if not isinstance(value, Mapping):
            raise self.error(name, f"expected an object, got {describe(value)}")
        return value

    def json_value(self, name: str) -> Any:
        """A value kept as metadata, checked to be storable in a PostgreSQL jsonb column."""
        value = self.get(name)
        _check_storable_json(self, name, value)
        return value


def describe(value: Any) -> str:
    """A short, safe description of a wrong value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the text {shown!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def check_storable_text(row: Row, name: str, value: str) -> None:
    # PostgreSQL text cannot hold NUL, and a lone surrogate ("\ud800" in JSON) is not UTF-8.
    if "\x00" in value:
        raise row.error(name, "contains a NUL character (\\u0000), which cannot be stored")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise row.error(name, "contains a lone UTF-16 surrogate (e.g. \\ud800), which is not valid text") from None


def _check_storable_json(row: Row, name: str, value: Any) -> None:
    if isinstance(value, str):
        check_storable_text(row, name, value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_storable_json(row, name, key)
            _check_storable_json(row, name, item)
    elif isinstance(value, list):
        for item in value:
            _check_storable_json(row, name, item)


class Importer:
    """Base of one file format. Subclasses set `format_name` and implement the three methods.

    Register a new format with one line in `importers/__init__.py`.
    """

    format_name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    # Keys of the service's `options` this format understands (anything else is refused).
    option_names: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, path: str | Path, *, catalog: Catalog, languages: frozenset[str] | None,
                 options: Mapping[str, Any] | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise ApplicationError(f"{self.path} does not exist", {"path": str(self.path)})
        options = dict(options or {})
        unknown = sorted(set(options) - self.option_names)
        if unknown:
            raise ApplicationError(
                f"The {self.format_name} importer does not take the option(s) {', '.join(unknown)}",
                {"options": ",".join(unknown)},
            )
        self.catalog = catalog
        self.languages = languages
        self.options = options

    def dataset_info(self) -> DatasetInfo:
        raise NotImplementedError

    def files(self) -> list[Path]:
        """The files this import reads (checksummed before and after the write)."""
        raise NotImplementedError

    def records(self, progress: ByteProgress | None = None) -> Iterator[PromptRecord]:
        """Every record of every file, checked; languages outside `self.languages` may be skipped."""
        raise NotImplementedError

    # Helpers for subclasses.

    def wants(self, language: str) -> bool:
        return self.languages is None or language in self.languages

    def data_files(self, suffixes: tuple[str, ...]) -> list[Path]:
        """The path itself, or the files with these suffixes in the directory (sorted)."""
        if self.path.is_file():
            return [self.path]
        found = sorted(p for p in self.path.iterdir() if p.is_file() and p.name.lower().endswith(suffixes))
        if not found:
            raise ApplicationError(
                f"No {' / '.join(suffixes)} files in {self.path}", {"path": str(self.path)}
            )
        return found


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a valid JSON number")


def _first_bad_field(value: Any, prefix: str = "") -> str | None:
    """The dotted name of the first string holding an undecodable byte (a surrogate escape)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            found = _first_bad_field(item, name)
            if found:
                return found
    elif isinstance(value, list):
        for item in value:
            found = _first_bad_field(item, prefix)
            if found:
                return found
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return prefix or "(value)"
    return None


def _encoding_problem(raw: bytes, exc: UnicodeDecodeError) -> str:
    return (
        f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line); "
        "the file must be saved as UTF-8"
    )


def read_jsonl(path: Path, progress: ByteProgress | None = None) -> Iterator[tuple[Location, dict]]:
    """JSON Lines, one object per line. Lines end at "\\n" only: U+2028 and "\\r" are text."""
    name = str(path)
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if progress:
                progress(len(raw))
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            location = Location(name, number)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                field_name = None
                try:  # Name the field that holds the bad byte, when the line is JSON otherwise.
                    field_name = _first_bad_field(json.loads(raw.decode("utf-8", "surrogateescape")))
                except ValueError:
                    pass
                raise RecordError(location, field_name, _encoding_problem(raw, exc)) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line, parse_constant=_reject_constant)
            except json.JSONDecodeError as exc:
                raise RecordError(location, None, f"not valid JSON: {exc.msg} (column {exc.colno})") from None
            except ValueError as exc:
                raise RecordError(location, None, f"not valid JSON: {exc}") from None
            if not isinstance(obj, dict):
                raise RecordError(location, None, f"expected a JSON object, got {describe(obj)}")
            yield location, obj


def _surrogate_lines(fh, progress: ByteProgress | None) -> Iterator[str]:
    """Binary lines decoded so that a bad byte survives as a surrogate we can point at later."""
    for number, raw in enumerate(fh, start=1):
        if progress:
            progress(len(raw))
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        yield raw.decode("utf-8", "surrogateescape")


# Prompts can be long; csv's default cell limit is 128 KiB.
CSV_FIELD_LIMIT = 16 * 1024 * 1024


def read_csv(path: Path, progress: ByteProgress | None = None) -> Iterator[tuple[Location, dict]]:
    """CSV with a header row. Line numbers are where each record starts (quoted cells may span lines)."""
    name = str(path)
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)
    with path.open("rb") as fh:
        reader = csv.reader(_surrogate_lines(fh, progress), strict=True)
        header: list[str] | None = None
        last_line = 0
        while True:
            start = last_line + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise RecordError(Location(name, start), None, f"not valid CSV: {exc}") from None
            last_line = reader.line_num
            location = Location(name, start)
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            bad = next((i for i, cell in enumerate(cells) if not _is_utf8(cell)), None)
            if bad is not None:
                raw = cells[bad].encode("utf-8", "surrogateescape")
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    problem = _encoding_problem(raw, exc).replace("of the line", "of the cell")
                column = header[bad] if header and bad < len(header) else (None if header else "(header)")
                raise RecordError(location, column, problem)
            if header is None:
                header = [cell.strip() for cell in cells]
                duplicates = sorted({c for c in header if header.count(c) > 1})
                if duplicates:
                    raise RecordError(location, duplicates[0], "the header names this column twice")
                continue
            if len(cells) != len(header):
                raise RecordError(location, None, f"expected {len(header)} cells like the header, got {len(cells)}")
            yield location, dict(zip(header, cells, strict=True))
        if header is None:
            raise RecordError(Location(name, 1), None, "the file is empty (a header row is required)")


def _is_utf8(cell: str) -> bool:
    if cell.isascii():
        return True
    try:
        cell.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
