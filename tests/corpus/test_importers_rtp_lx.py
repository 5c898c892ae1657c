"""The real RTP-LX release (../shared/data/rtp-lx beside the checkout, 28 files, 30,263 prompts),
imported once per module. Skipped on a machine without the release, but never under CI,
where a missing release is a failure: these are the tests on real data."""
import hashlib
import json
import os
import shutil
from collections import Counter
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from toxplatform.corpus.importers.rtp_lx import FILE_LANGUAGES
from toxplatform.corpus.models import Dataset, Prompt, PromptLabel
from toxplatform.corpus.services import import_dataset
from toxplatform.errors import ApplicationError

REPO_ROOT = Path(__file__).resolve().parents[2]
RTP_LX_DIR = Path(os.environ.get("RTP_LX_DIR", REPO_ROOT.parent / "shared" / "data" / "rtp-lx"))
SLUG = "rtp-lx"
RELEASE_PRESENT = (RTP_LX_DIR / "RTP_LX_EN.json").exists()

if not RELEASE_PRESENT and os.environ.get("CI"):
    raise RuntimeError(f"The RTP-LX release is missing under CI: {RTP_LX_DIR} (set RTP_LX_DIR)")

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not RELEASE_PRESENT, reason=f"the RTP-LX release is not at {RTP_LX_DIR}"),
]


def read_release() -> dict[str, list[dict]]:
    """Records per language, read independently of the importer (lines split at \\n only)."""
    records = {}
    for path in sorted(RTP_LX_DIR.glob("RTP_LX_*.json")):
        code = path.name[len("RTP_LX_"):-len(".json")]
        lines = path.read_bytes().decode("utf-8").split("\n")
        records[FILE_LANGUAGES[code]] = [json.loads(line) for line in lines if line.strip()]
    return records


@pytest.fixture(scope="module")
def release():
    return read_release()


@pytest.fixture(scope="module")
def imported(django_db_setup, django_db_blocker):
    """One full import, committed for this module's tests and removed afterwards."""
    with django_db_blocker.unblock():
        report = import_dataset("rtp-lx", RTP_LX_DIR)
        yield report
        PromptLabel.objects.filter(prompt__dataset__slug=SLUG).delete()
        Prompt.objects.filter(dataset__slug=SLUG).delete()
        Dataset.objects.filter(slug=SLUG).delete()


def test_every_record_of_every_file_is_imported(imported, release):
    expected = {code: len(records) for code, records in release.items()}
    assert len(expected) == 28
    assert sum(expected.values()) == 30263
    stored = Counter(Prompt.objects.filter(dataset__slug=SLUG).values_list("language_id", flat=True))
    assert dict(stored) == expected
    assert {code: c.created for code, c in imported.languages.items()} == expected
    assert PromptLabel.objects.filter(prompt__dataset__slug=SLUG).count() == 30263 * 8

    dataset = Dataset.objects.get(slug=SLUG)
    assert (dataset.name, dataset.version, dataset.format) == ("RTP-LX", "0.3", "rtp-lx")
    assert dataset.license == "MIT (with third-party terms, see NOTICE)"
    assert dataset.source == str(RTP_LX_DIR.resolve()) and dataset.imported_at is not None
    assert dataset.checksum == imported.checksum and len(dataset.checksum) == 64


def test_rater_values_of_a_known_record(imported):
    # German Index 0: raters gave toxicity 5/5/5 and identity attack 2/3/3.
    prompt = Prompt.objects.get(dataset__slug=SLUG, language="de", external_id="0")
    labels = {label.category_id: label for label in prompt.labels.all()}
    assert labels["toxicity"].rater_values == [5, 5, 5] and labels["toxicity"].value == 5.0
    assert labels["identity-attack"].rater_values == [2, 3, 3]
    assert labels["identity-attack"].value == pytest.approx(8 / 3)
    assert labels["microaggression"].rater_values == [1, 3, 1]
    assert (labels["toxicity"].scale_min, labels["toxicity"].scale_max) == (1, 5)
    assert (labels["insult"].scale_min, labels["insult"].scale_max) == (1, 3)
    assert all(label.source == "human" and label.num_raters == 3 for label in labels.values())
    assert prompt.is_toxic is True and prompt.group_id == "0" and not prompt.culturally_specific


def test_na_records_get_ids_from_their_text(imported, release):
    for code, count in (("sh", 58), ("sw", 76)):
        na = Prompt.objects.filter(dataset__slug=SLUG, language=code, external_id__startswith="na-")
        assert na.count() == count
        assert not na.exclude(group_id="").exists() and not na.filter(culturally_specific=False).exists()
        assert all(p.metadata["original"]["Filename"] == "NA" for p in na)
    first_na = next(r for r in release["sh"] if r["Index"] == "NA")
    external_id = "na-" + hashlib.sha1(first_na["Prompt"].encode("utf-8")).hexdigest()[:12]
    prompt = Prompt.objects.get(dataset__slug=SLUG, language="sh", external_id=external_id)
    assert prompt.text == first_na["Prompt"]
    toxicity = prompt.labels.get(category="toxicity")
    assert toxicity.rater_values == first_na["AnnotationsRaw"]["Toxicity"]
    # SR/SW also keep the RealToxicityPrompts source document of transcreated prompts.
    transcreated = Prompt.objects.get(dataset__slug=SLUG, language="sw", external_id="0")
    assert transcreated.metadata["original"]["Filename"].endswith(".txt")


def test_transcreations_are_aligned_across_languages_by_index(imported, release):
    group_zero = Prompt.objects.filter(dataset__slug=SLUG, group_id="0")
    assert sorted(group_zero.values_list("language_id", flat=True)) == sorted(release)
    # Index 960 is missing from some files: its group has exactly the languages that hold it.
    holding_960 = sorted(code for code, records in release.items() if any(str(r["Index"]) == "960" for r in records))
    assert 10 < len(holding_960) < 28
    assert sorted(Prompt.objects.filter(dataset__slug=SLUG, group_id="960").values_list("language_id", flat=True)) \
        == holding_960
    prompts = Prompt.objects.filter(dataset__slug=SLUG)
    cultural = sum(1 for records in release.values() for r in records
                   if r["Index"] == "NA" or int(r["Index"]) >= 999)
    assert prompts.filter(culturally_specific=True).count() == cultural
    assert not prompts.filter(culturally_specific=True).exclude(group_id="").exists()
    assert not prompts.filter(culturally_specific=False, group_id="").exists()


def test_flags_variants_and_odd_records(imported, release):
    prompts = Prompt.objects.filter(dataset__slug=SLUG)
    toxic = sum(1 for records in release.values() for r in records if r["Annotations"]["Toxicity"] >= 3)
    assert prompts.filter(is_toxic=True).count() == toxic
    assert prompts.filter(is_toxic__isnull=True).count() == 0

    variants = Counter(prompts.filter(language="pt").values_list("metadata__variant", flat=True))
    assert variants == {"pt-BR": 1042, "pt-PT": 53}
    assert prompts.filter(language="pt", metadata__dialect="Portugal").count() == 53
    assert prompts.filter(language="ar", metadata__variant="ar-EG").count() == 26
    assert prompts.filter(language="ar", metadata__dialect="Levantine").count() == 23
    assert not prompts.filter(language="ar", metadata__dialect="Levantine", metadata__has_key="variant").exists()
    assert prompts.filter(language="ru", metadata__variant="ru-UA").count() == 155
    assert prompts.filter(language="uk", metadata__has_key="locale_raw").count() == 0  # UK's Locale is empty

    # Hebrew has one empty prompt: imported, so the counts match the file.
    assert list(prompts.filter(language="he", text="").values_list("external_id", flat=True)) == ["424"]
    # U+2028 inside a Turkish prompt is text, not a line break.
    turkish = prompts.get(language="tr", external_id="423")
    assert "\u2028" in turkish.text
    assert turkish.text == next(r["Prompt"] for r in release["tr"] if r["Index"] == 423)


def test_reimporting_the_release_changes_nothing(imported):
    prompts = Prompt.objects.filter(dataset__slug=SLUG)
    before = sorted(prompts.filter(language__in=["de", "sh"]).values_list("id", "external_id", "text", "metadata"))
    labels_before = PromptLabel.objects.filter(prompt__dataset__slug=SLUG).count()
    dataset_before = Dataset.objects.filter(slug=SLUG).values().get()

    report = import_dataset("rtp-lx", RTP_LX_DIR)

    assert not report.changed and not report.dataset_created
    assert report.totals.unchanged == 30263 and report.totals.labels_unchanged == 30263 * 8
    assert prompts.count() == 30263
    assert PromptLabel.objects.filter(prompt__dataset__slug=SLUG).count() == labels_before
    assert sorted(prompts.filter(language__in=["de", "sh"]).values_list("id", "external_id", "text", "metadata")) \
        == before
    assert Dataset.objects.filter(slug=SLUG).values().get() == dataset_before


def test_a_changed_file_updates_only_what_changed(imported, tmp_path):
    lines = (RTP_LX_DIR / "RTP_LX_DE.json").read_bytes().decode("utf-8").split("\n")
    position = next(i for i, line in enumerate(lines) if line.strip() and json.loads(line)["Index"] == "5")
    record = json.loads(lines[position])
    record["Prompt"] = "Ein geänderter Text"
    record["AnnotationsRaw"]["Bias"] = [3, 3, 3]
    record["Annotations"]["Bias"] = 3.0
    lines[position] = json.dumps(record, ensure_ascii=False) + "\r"
    (tmp_path / "RTP_LX_DE.json").write_bytes("\n".join(lines).encode("utf-8"))
    old_ids = set(Prompt.objects.filter(dataset__slug=SLUG, language="de").values_list("id", flat=True))

    report = import_dataset("rtp-lx", tmp_path, languages=["de"])

    counts = report.languages["de"]
    assert list(report.languages) == ["de"]
    assert (counts.created, counts.updated, counts.unchanged) == (0, 1, 1028)
    assert (counts.labels_created, counts.labels_updated, counts.labels_unchanged) == (0, 1, 1029 * 8 - 1)
    prompt = Prompt.objects.get(dataset__slug=SLUG, language="de", external_id="5")
    assert prompt.text == "Ein geänderter Text" and prompt.id in old_ids
    assert prompt.labels.get(category="bias").rater_values == [3, 3, 3]
    assert set(Prompt.objects.filter(dataset__slug=SLUG, language="de").values_list("id", flat=True)) == old_ids
    assert Dataset.objects.get(slug=SLUG).source == str(tmp_path.resolve())


def test_a_broken_release_file_changes_nothing(imported, tmp_path):
    for name in ("RTP_LX_DE.json", "RTP_LX_FR.json"):
        shutil.copy(RTP_LX_DIR / name, tmp_path / name)
    lines = (tmp_path / "RTP_LX_FR.json").read_bytes().split(b"\n")
    # The French line of Index 7, after a thousand good German lines and some French ones.
    number = next(i for i, line in enumerate(lines, 1) if b'"Index": "7"' in line)
    broken = [
        (b'"Index": "7"', b'"Index": "seven"', 'field "Index": expected a whole number >= 0 or "NA"'),
        (b'"Index": "7"', b'"Index": 7.5', 'field "Index": expected a whole number >= 0 or "NA"'),
        (b'"Toxicity": [', b'"Toxicity": [9, ', 'field "AnnotationsRaw.Toxicity": rating 9 is outside the scale 1-5'),
        (b'"Toxicity": [', b'"Toxicity": ["5", ', 'field "AnnotationsRaw.Toxicity": expected a list of numbers'),
        (b'"Annotations": {', b'"Annotations": {"Rudeness": 2, ', 'field "Annotations.Rudeness": unknown harm'),
        (b'"Prompt": "', '"Prompt": "Français '.encode("latin-1"), 'field "Prompt": not valid UTF-8 (byte 0xe7'),
    ]
    before = Prompt.objects.filter(dataset__slug=SLUG).count(), PromptLabel.objects.count()
    for old, new, problem in broken:
        edited = list(lines)
        edited[number - 1] = edited[number - 1].replace(old, new, 1)
        (tmp_path / "RTP_LX_FR.json").write_bytes(b"\n".join(edited))
        with pytest.raises(ApplicationError) as caught:
            import_dataset("rtp-lx", tmp_path)
        assert f"RTP_LX_FR.json, line {number}, {problem}" in caught.value.message
        assert (Prompt.objects.filter(dataset__slug=SLUG).count(), PromptLabel.objects.count()) == before
    assert Dataset.objects.get(slug=SLUG).source == str(RTP_LX_DIR.resolve())


def test_rtp_lx_file_names_and_languages_are_checked(imported, tmp_path):
    with pytest.raises(ApplicationError, match="No RTP-LX file for language.*vi"):
        import_dataset("rtp-lx", RTP_LX_DIR, languages=["de", "vi"])
    (tmp_path / "RTP_LX_XX.json").write_text("{}\n")
    with pytest.raises(ApplicationError, match="RTP_LX_XX.json is not an RTP-LX file name"):
        import_dataset("rtp-lx", tmp_path)


def test_command_with_languages_prints_the_table(imported):
    out = StringIO()
    call_command("import_dataset", "rtp-lx", str(RTP_LX_DIR), "--dataset-slug", "rtp-lx-two",
                 "--languages", "de", "pt", "--no-progress", stdout=out, stderr=StringIO())
    table = {line.split()[0]: line.split()[1:] for line in out.getvalue().splitlines()[2:]}
    assert table["de"][:5] == ["1029", "1029", "0", "0", "8232"]
    assert table["pt"][:2] == ["1095", "1095"]
    assert table["total"][:2] == ["2124", "2124"]
    assert Counter(Prompt.objects.filter(dataset__slug="rtp-lx-two").values_list("language_id", flat=True)) \
        == {"de": 1029, "pt": 1095}
