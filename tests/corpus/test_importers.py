"""Importers of the RTP, PTP, generic JSONL and CSV formats, bad files, and the command.

The real RTP-LX release has its own module (test_importers_rtp_lx.py).
"""
import json
import shutil
import subprocess
import sys
import textwrap
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from toxplatform.corpus.importers import IMPORTERS
from toxplatform.corpus.models import Dataset, Prompt, PromptLabel
from toxplatform.corpus.services import IMPORT_BATCH_SIZE, import_dataset
from toxplatform.errors import ApplicationError

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "importers"

pytestmark = pytest.mark.django_db


def snapshot():
    """Every stored value of the corpus tables: "exactly as it was" means this is equal."""
    return (
        sorted(Dataset.objects.values_list()),
        sorted(Prompt.objects.values_list("id", "dataset_id", "language_id", "external_id", "group_id", "text",
                                          "culturally_specific", "is_toxic", "metadata"), key=str),
        sorted(PromptLabel.objects.values_list(), key=str),
    )


def ptp_line(number: int, language: str = "de", **fields) -> str:
    record = {"id": f"p{number}", "lang": language, "text": f"Satz Nummer {number}.", "toxicity": 0.1,
              "insult": 0.05}
    record.update(fields)
    return json.dumps(record, ensure_ascii=False)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def labels_of(prompt: Prompt) -> dict[str, PromptLabel]:
    return {label.category_id: label for label in prompt.labels.all()}


def test_registry_names_every_format():
    assert set(IMPORTERS) == {"rtp-lx", "rtp", "ptp", "jsonl", "csv"}


def test_rtp_prompts_with_perspective_labels():
    report = import_dataset("rtp", FIXTURES / "rtp_prompts.jsonl")

    assert report.dataset == "rtp" and report.dataset_created
    assert report.languages["en"].created == 3
    dataset = Dataset.objects.get(slug="rtp")
    assert (dataset.format, dataset.name, dataset.license) == ("rtp", "RealToxicityPrompts", "Apache-2.0")
    assert len(dataset.checksum) == 64

    first = Prompt.objects.get(external_id="0766186-bc7f2a64cb271f5f56cf6f25570cd9ed.txt:340-564")
    assert first.language_id == "en" and first.is_toxic is False and first.group_id == ""
    assert first.metadata["challenging"] is False
    assert first.metadata["continuation"] == " statement from the inspector."
    assert first.metadata["continuation_scores"]["toxicity"] == pytest.approx(0.06431882)
    labels = labels_of(first)
    assert set(labels) == {"toxicity", "severe-toxicity", "identity-attack", "insult", "threat", "profanity",
                           "sexual-content", "flirtation"}
    assert labels["identity-attack"].value == pytest.approx(0.32305634)
    assert labels["sexual-content"].value == pytest.approx(0.14422302)
    assert all(lab.source == "perspective" and (lab.scale_min, lab.scale_max) == (0, 1) for lab in labels.values())
    assert all(lab.num_raters == 0 and lab.rater_values == [] for lab in labels.values())

    # Null scores (RTP has them) are skipped, not stored as 0.
    second = Prompt.objects.get(external_id__startswith="0873434-")
    assert second.is_toxic is True and second.metadata["challenging"] is True
    assert "sexual-content" not in labels_of(second) and "flirtation" not in labels_of(second)
    assert len(labels_of(second)) == 6

    # No source document: the line number is the id; 0.5 is toxic (>=).
    third = Prompt.objects.get(external_id="line-3")
    assert third.is_toxic is True and set(labels_of(third)) == {"toxicity"}


def test_reimport_changes_nothing_and_updates_what_changed(tmp_path):
    import_dataset("rtp", FIXTURES / "rtp_prompts.jsonl")
    before = snapshot()

    again = import_dataset("rtp", FIXTURES / "rtp_prompts.jsonl")
    assert not again.dataset_created and not again.changed
    assert (again.totals.unchanged, again.totals.labels_unchanged) == (3, 15)
    assert snapshot() == before  # imported_at included: an idle re-import touches nothing

    # One prompt's text and one of its scores change; the rest stays as it was.
    lines = (FIXTURES / "rtp_prompts.jsonl").read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[0])
    record["prompt"]["text"] = "An edited prompt text"
    record["prompt"]["insult"] = 0.5
    lines[0] = json.dumps(record)
    changed = write_lines(tmp_path / "rtp_prompts.jsonl", lines)
    prompt_ids = sorted(Prompt.objects.values_list("id", flat=True))

    report = import_dataset("rtp", changed)
    counts = report.languages["en"]
    assert (counts.created, counts.updated, counts.unchanged) == (0, 1, 2)
    assert (counts.labels_created, counts.labels_updated, counts.labels_unchanged) == (0, 1, 14)
    assert sorted(Prompt.objects.values_list("id", flat=True)) == prompt_ids  # upserted in place
    edited = Prompt.objects.get(external_id__startswith="0766186-")
    assert edited.text == "An edited prompt text"
    assert labels_of(edited)["insult"].value == 0.5
    assert PromptLabel.objects.count() == 15
    assert Dataset.objects.get(slug="rtp").source == str(changed.resolve())


def test_ptp_jsonl_with_language_column_and_raw_perspective_response():
    report = import_dataset("ptp", FIXTURES / "ptp_mixed.jsonl")

    assert {code: c.created for code, c in report.languages.items()} == {"ar": 1, "de": 1, "fr": 1}
    german = Prompt.objects.get(language="de")
    assert german.external_id == "ptp_mixed:1"  # no id column: file stem and line
    assert german.metadata["meta_data"]["url"] == "https://example.org/de/1"
    assert len(labels_of(german)) == 8 and german.is_toxic is False
    arabic = Prompt.objects.get(language="ar")
    assert {c: lab.value for c, lab in labels_of(arabic).items()} == {"toxicity": 0.7, "insult": 0.6}
    assert arabic.is_toxic is True
    french = Prompt.objects.get(language="fr")
    assert french.external_id == "fr-1" and french.is_toxic is False
    assert french.metadata == {"toxicity_bucket": "0.4-0.6"}


def test_ptp_csv_takes_the_language_from_the_file_name():
    report = import_dataset("ptp", FIXTURES / "ptp-de.csv", dataset_slug="ptp-german")

    assert report.languages["de"].created == 3
    texts = dict(Prompt.objects.values_list("external_id", "text"))
    assert texts["ptp-de:2"] == "Ein Satz, mit Komma."
    assert texts["ptp-de:3"] == "Zwei Zeilen\nin einer Zelle"  # a quoted cell spanning two lines
    assert texts["ptp-de:5"] == "Nur Text ohne Werte"  # the record starts on line 5
    two_lines = Prompt.objects.get(external_id="ptp-de:3")
    assert two_lines.is_toxic is True and labels_of(two_lines)["insult"].value == 0.6
    assert Prompt.objects.get(external_id="ptp-de:5").is_toxic is None
    assert not PromptLabel.objects.filter(prompt__external_id="ptp-de:5").exists()


def test_ptp_directory_and_languages_restriction(tmp_path):
    shutil.copy(FIXTURES / "ptp_mixed.jsonl", tmp_path / "mixed.jsonl")
    shutil.copy(FIXTURES / "ptp-de.csv", tmp_path / "ptp-de.csv")

    report = import_dataset("ptp", tmp_path, languages=["DE", "fr"])  # codes are matched case-insensitively

    assert {code: c.created for code, c in report.languages.items()} == {"de": 4, "fr": 1}
    assert set(Prompt.objects.values_list("language_id", flat=True)) == {"de", "fr"}
    assert len(report.files) == 2


def test_ptp_without_any_language_hint_is_refused(tmp_path):
    path = write_lines(tmp_path / "prompts.jsonl", [json.dumps({"text": "hello", "toxicity": 0.1})])
    with pytest.raises(ApplicationError, match=r'prompts.jsonl, line 1, field "lang": missing'):
        import_dataset("ptp", path)
    # A single --languages code says it.
    assert import_dataset("ptp", path, languages=["en"]).languages["en"].created == 1


def test_generic_jsonl_with_a_column_mapping():
    options = {
        "map": {"text": "body.prompt", "language": "lang", "id": "uid", "group": "gid",
                "label:toxicity": "tox", "raters:bias": "raters", "metadata:source": "src", "toxic": "flag"},
        "label_scale": {"toxicity": "0:1"},
        "label_source": "human",
        "dataset_name": "Weather prompts",
    }
    report = import_dataset("jsonl", FIXTURES / "generic_prompts.jsonl", options=options)

    dataset = Dataset.objects.get(slug="generic_prompts")
    assert (dataset.name, dataset.format) == ("Weather prompts", "jsonl")
    assert set(report.languages) == {"en", "de", "ja"}
    english = Prompt.objects.get(external_id="a-1")
    assert (english.text, english.language_id, english.group_id) == ("The weather today is", "en", "g1")
    assert english.metadata == {"source": "forum"} and english.is_toxic is False
    assert Prompt.objects.filter(group_id="g1").count() == 2
    labels = labels_of(english)
    assert labels["toxicity"].value == 0.2 and (labels["toxicity"].scale_min, labels["toxicity"].scale_max) == (0, 1)
    # Only raters: the label is their mean, on the category's own 1-3 scale.
    assert labels["bias"].value == pytest.approx(4 / 3)
    assert labels["bias"].rater_values == [1, 2, 1] and labels["bias"].num_raters == 3
    assert (labels["bias"].scale_min, labels["bias"].scale_max, labels["bias"].source) == (1, 3, "human")
    japanese = Prompt.objects.get(external_id="a-3")
    assert japanese.group_id == "" and not japanese.labels.exists()


def test_generic_csv_with_scale_and_threshold():
    options = {
        "map": {"text": "text", "language": "lang", "id": "uid", "label:toxicity": "tox_score",
                "raters:insult": "ratings", "metadata:note": "note"},
        "label_scale": {"toxicity": "0:1"},
        "toxic_threshold": 0.5,
    }
    report = import_dataset("csv", FIXTURES / "generic_prompts.csv", dataset_slug="csv-prompts", options=options)

    assert {code: c.created for code, c in report.languages.items()} == {"pt": 2, "es": 1}
    first, second, third = (Prompt.objects.get(external_id=i) for i in ("r1", "r2", "r3"))
    assert first.is_toxic is False and second.is_toxic is True and third.is_toxic is None
    assert second.text == "Outra frase, com vírgula"
    assert labels_of(first)["insult"].rater_values == [1, 1, 2]
    assert labels_of(second)["insult"].rater_values == [3, 2, 3]
    assert first.metadata == {"note": "first"} and third.metadata == {}
    assert labels_of(first)["insult"].source == "dataset"


def test_generic_mapping_mistakes_are_named():
    path = FIXTURES / "generic_prompts.csv"
    cases = [
        ({"map": {"language": "lang"}}, "Map the prompt text"),
        ({"map": {"text": "text", "label:rudeness": "tox_score", "language": "lang"}},
         "Unknown harm category 'rudeness'"),
        ({"map": {"text": "text", "colour": "x", "language": "lang"}}, "Cannot map 'colour'"),
        ({"map": {"text": "text"}}, "Say which language"),
        ({"map": {"text": "text", "language": "lang"}, "label_scale": {"toxicity": "0:1"}}, "no label:toxicity"),
        ({"map": {"text": "text", "language": "lang", "label:toxicity": "tox_score"},
          "label_scale": {"toxicity": "1-5"}}, "expected MIN:MAX"),
    ]
    for options, message in cases:
        with pytest.raises(ApplicationError, match=message):
            import_dataset("csv", path, options=options)
    with pytest.raises(ApplicationError, match="does not take the option"):
        import_dataset("rtp", FIXTURES / "rtp_prompts.jsonl", options={"map": {"text": "x"}})
    assert snapshot() == ([], [], [])


def test_unknown_format_language_and_path():
    with pytest.raises(ApplicationError, match="Unknown dataset format 'parquet'"):
        import_dataset("parquet", FIXTURES / "rtp_prompts.jsonl")
    with pytest.raises(ApplicationError, match="Unknown language code.*: xx, klingon"):
        import_dataset("ptp", FIXTURES / "ptp_mixed.jsonl", languages=["de", "xx", "klingon"])
    with pytest.raises(ApplicationError, match="does not exist"):
        import_dataset("ptp", FIXTURES / "no-such-file.jsonl")
    with pytest.raises(ApplicationError, match="not a valid dataset slug"):
        import_dataset("ptp", FIXTURES / "ptp_mixed.jsonl", dataset_slug="Has Spaces")
    with pytest.raises(ApplicationError, match="Nothing to import"):
        import_dataset("ptp", FIXTURES / "ptp_mixed.jsonl", languages=["ja"])
    assert snapshot() == ([], [], [])


def test_a_dataset_keeps_its_format():
    import_dataset("rtp", FIXTURES / "rtp_prompts.jsonl", dataset_slug="mine")
    before = snapshot()
    with pytest.raises(ApplicationError, match="Dataset 'mine' holds rtp data"):
        import_dataset("ptp", FIXTURES / "ptp_mixed.jsonl", dataset_slug="mine")
    assert snapshot() == before


# Bad files: each case has good lines first (whose ids already exist with other values),
# then one bad line. The error names file, line and field; the database is unchanged.
GOOD = [ptp_line(1, text="changed 1"), ptp_line(2, text="changed 2"), ptp_line(3, language="fr")]
MALFORMED = {
    "bad json": (GOOD + ['{"id": "p9", "lang": "de", "text": "unterminated'], 4, None, "not valid JSON"),
    "missing field": (GOOD + [json.dumps({"id": "p9", "lang": "de", "toxicity": 0.2})], 4, "text", "missing"),
    "wrong type": (GOOD + [ptp_line(9, toxicity="0.9")], 4, "toxicity", "expected a number, got the text '0.9'"),
    "boolean is not a number": (GOOD + [ptp_line(9, insult=True)], 4, "insult", "expected a number, got true"),
    "text is not text": (GOOD + [ptp_line(9, text=["a", "list"])], 4, "text", "expected text, got a list"),
    "unknown language": (GOOD + [ptp_line(9, language="xx")], 4, "lang", "unknown language code 'xx'"),
    "duplicate id": (GOOD + [ptp_line(9), ptp_line(2, text="again")], 5, "id",
                     "duplicate id 'p2' for language de (first at line 2)"),
    "score off the scale": (GOOD + [ptp_line(9, toxicity=1.5)], 4, "toxicity", "outside the scale 0-1"),
    "NaN": (GOOD + ['{"id": "p9", "lang": "de", "text": "x", "toxicity": NaN}'], 4, None, "NaN is not a valid"),
    "NUL character": (GOOD + [ptp_line(9, text="a\u0000b")], 4, "text", "NUL character"),
    "lone surrogate": (GOOD + ['{"id": "p9", "lang": "de", "text": "a\\ud800b"}'], 4, "text", "surrogate"),
    "not an object": (GOOD + ["[1, 2, 3]"], 4, None, "expected a JSON object, got a list"),
    "id too long": (GOOD + [ptp_line(9, id="x" * 101)], 4, "id", "at most 100 fit"),
}


@pytest.fixture
def existing_ptp(tmp_path):
    """A first, good import: the bad files below try to change these rows."""
    import_dataset("ptp", write_lines(tmp_path / "first.jsonl", [ptp_line(1), ptp_line(2), ptp_line(3, language="fr")]))
    return snapshot()


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_jsonl_names_file_line_field_and_changes_nothing(case, tmp_path, existing_ptp):
    lines, line, field, problem = MALFORMED[case]
    path = write_lines(tmp_path / "bad_prompts.jsonl", lines)

    with pytest.raises(ApplicationError) as caught:
        import_dataset("ptp", path)

    message = caught.value.message
    assert str(path) in message and f"line {line}" in message and problem in message
    if field:
        assert f'field "{field}"' in message
    assert caught.value.extra["line"] == line and caught.value.extra["file"] == str(path)
    assert snapshot() == existing_ptp


def test_latin1_bytes_are_refused_with_the_field_named(tmp_path, existing_ptp):
    path = tmp_path / "latin1.jsonl"
    good = "\n".join(GOOD).encode("utf-8") + b"\n"
    path.write_bytes(good + '{"id": "p9", "lang": "de", "text": "Stra\u00dfe caf\u00e9"}\n'.encode("latin-1"))

    with pytest.raises(ApplicationError) as caught:
        import_dataset("ptp", path)

    assert 'latin1.jsonl, line 4, field "text": not valid UTF-8 (byte 0xdf' in caught.value.message
    assert snapshot() == existing_ptp


def test_malformed_csv(tmp_path, existing_ptp):
    header = "id,lang,text,toxicity"
    cases = {
        "wrong cell count": ([header, "p1,de,Satz,0.1", "p9,de,zu,viele,Zellen"], 3, None, "expected 4 cells"),
        "not a number": ([header, "p1,de,Satz,0.1", "p9,de,Satz,high"], 3, "toxicity", "expected a number"),
        "empty text": ([header, "p1,de,Satz,0.1", "p9,de,,0.2"], 3, "text", "missing"),
        "unclosed quote": ([header, "p1,de,Satz,0.1", 'p9,de,"Satz,0.2'], 3, None, "not valid CSV"),
        "duplicate column": (["id,lang,text,text", "p1,de,Satz,x"], 1, "text", "names this column twice"),
    }
    for case, (lines, line, field, problem) in cases.items():
        path = write_lines(tmp_path / "bad.csv", lines)
        with pytest.raises(ApplicationError) as caught:
            import_dataset("ptp", path)
        message = caught.value.message
        assert f"bad.csv, line {line}" in message and problem in message, case
        if field:
            assert f'field "{field}"' in message, case
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(f"{header}\np1,de,Satz,0.1\np9,de,".encode() + "Straße".encode("latin-1") + b",0.2\n")
    with pytest.raises(ApplicationError, match=r'latin1.csv, line 3, field "text": not valid UTF-8'):
        import_dataset("ptp", latin1)
    assert snapshot() == existing_ptp


def test_a_failure_while_writing_rolls_back_rows_already_written(tmp_path, existing_ptp):
    """The check pass passes; the file then breaks after the first batch was written: all of it goes."""
    total = IMPORT_BATCH_SIZE + 500
    path = write_lines(tmp_path / "big.jsonl", [ptp_line(i) for i in range(1, total + 1)])
    seen_mid_import = []

    def edit_file_mid_import(stage, done, _total):
        if stage == "write" and not seen_mid_import:
            seen_mid_import.append((Prompt.objects.count(), PromptLabel.objects.count()))
            lines = path.read_text(encoding="utf-8").splitlines()
            lines[-1] = ptp_line(total, toxicity="broken")
            write_lines(path, lines)

    with pytest.raises(ApplicationError, match=rf'big.jsonl, line {total}, field "toxicity"'):
        import_dataset("ptp", path, progress=edit_file_mid_import)

    prompts_mid_import, labels_mid_import = seen_mid_import[0]
    # Rows were in the database inside the transaction (labels of new prompts go in by COPY).
    assert prompts_mid_import >= IMPORT_BATCH_SIZE and labels_mid_import >= 2 * IMPORT_BATCH_SIZE
    assert snapshot() == existing_ptp


def test_files_that_change_during_the_import_roll_back(tmp_path, existing_ptp):
    path = write_lines(tmp_path / "prompts.jsonl", [ptp_line(i) for i in range(1, 50)])

    def edit_file(stage, done, _total):
        if stage == "write":
            path.write_text(path.read_text(encoding="utf-8").replace("Nummer 1.", "Nummer eins."), encoding="utf-8")

    with pytest.raises(ApplicationError, match="changed during the import; nothing was imported"):
        import_dataset("ptp", path, progress=edit_file)
    assert snapshot() == existing_ptp


def test_progress_reports_both_stages(tmp_path):
    path = write_lines(tmp_path / "prompts.jsonl", [ptp_line(i) for i in range(1, 30)])
    calls = []
    import_dataset("ptp", path, progress=lambda stage, done, total: calls.append((stage, done, total)))
    assert calls[-1] == ("write", 29, 29)
    checks = [c for c in calls if c[0] == "check"]
    assert checks[-1][1] == checks[-1][2] == path.stat().st_size


def test_command_imports_and_prints_a_summary():
    out = StringIO()
    call_command(
        "import_dataset", "jsonl", str(FIXTURES / "generic_prompts.jsonl"), "--dataset-slug", "weather",
        "--map", "text=body.prompt", "--map", "language=lang", "--map", "id=uid",
        "--map", "label:toxicity=tox", "--label-scale", "toxicity=0:1", "--toxic-threshold", "0.5",
        "--languages", "en,de", "--no-progress", stdout=out, stderr=StringIO(),
    )
    text = out.getvalue()
    assert "Imported jsonl into weather (new dataset) from 1 file(s)" in text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()[2:] if line.split()}
    assert rows["de"][:2] == ["1", "1"] and rows["en"][:2] == ["1", "1"] and rows["total"][:2] == ["2", "2"]
    assert "ja" not in rows
    assert set(Prompt.objects.values_list("language_id", flat=True)) == {"en", "de"}
    assert Prompt.objects.get(external_id="a-2").is_toxic is True

    again = StringIO()
    call_command(
        "import_dataset", "jsonl", str(FIXTURES / "generic_prompts.jsonl"), "--dataset-slug", "weather",
        "--map", "text=body.prompt", "--map", "language=lang", "--map", "id=uid",
        "--map", "label:toxicity=tox", "--label-scale", "toxicity=0:1", "--toxic-threshold", "0.5",
        "--languages", "en", "de", stdout=again, stderr=StringIO(),
    )
    assert "Nothing changed" in again.getvalue()


def test_command_errors_are_command_errors(tmp_path):
    bad = write_lines(tmp_path / "bad.jsonl", [ptp_line(1), "{oops"])
    with pytest.raises(CommandError, match=r"bad.jsonl, line 2: not valid JSON"):
        call_command("import_dataset", "ptp", str(bad), "--no-progress", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="Unknown language code"):
        call_command("import_dataset", "ptp", str(bad), "--languages", "zz", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="are for jsonl and csv"):
        call_command("import_dataset", "rtp", str(bad), "--map", "text=x", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="expected KEY=VALUE"):
        call_command("import_dataset", "csv", str(bad), "--map", "text", stdout=StringIO(), stderr=StringIO())
    assert snapshot() == ([], [], [])


SQLITE_IMPORT = textwrap.dedent("""
    import dataclasses, json, os, sys
    import django
    os.environ["DJANGO_SETTINGS_MODULE"] = "toxplatform.settings"
    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from toxplatform.corpus.models import Prompt, PromptLabel
    from toxplatform.corpus.services import import_dataset
    call_command("migrate", "corpus", verbosity=0)
    reports = [import_dataset("rtp", path) for path in sys.argv[1:]]
    edited = Prompt.objects.get(external_id__startswith="0766186-")
    print(json.dumps({
        "vendor": connection.vendor,
        "totals": [dataclasses.asdict(report.totals) for report in reports],
        "prompts": Prompt.objects.count(),
        "labels": PromptLabel.objects.count(),
        "text": edited.text,
        "insult": edited.labels.get(category="insult").value,
    }))
""")


def test_the_embedded_sqlite_default_imports_too(tmp_path):
    """With no DATABASE_URL the platform runs on SQLite: bulk_create upserts instead of COPY."""
    record = json.loads((FIXTURES / "rtp_prompts.jsonl").read_text(encoding="utf-8").splitlines()[0])
    record["prompt"]["text"] = "An edited prompt text"
    record["prompt"]["insult"] = 0.5
    lines = (FIXTURES / "rtp_prompts.jsonl").read_text(encoding="utf-8").splitlines()
    edited = write_lines(tmp_path / "rtp_edited.jsonl", [json.dumps(record), *lines[1:]])
    original = str(FIXTURES / "rtp_prompts.jsonl")
    env = {"PATH": "/usr/bin:/bin", "TOXPLATFORM_VAR_DIR": str(tmp_path / "var")}

    out = subprocess.run(
        [sys.executable, "-c", SQLITE_IMPORT, original, original, str(edited)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )

    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["vendor"] == "sqlite"
    first, again, changed = result["totals"]
    assert (first["created"], first["labels_created"]) == (3, 15)
    assert (again["unchanged"], again["labels_unchanged"], again["created"], again["updated"]) == (3, 15, 0, 0)
    assert (changed["updated"], changed["unchanged"], changed["labels_updated"]) == (1, 2, 1)
    assert (result["prompts"], result["labels"]) == (3, 15)
    assert (result["text"], result["insult"]) == ("An edited prompt text", 0.5)
