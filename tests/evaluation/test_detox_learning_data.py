"""What learning methods learn from: the job's dataset by gold label (balanced, seeded, capped) or a file."""
import json
from types import SimpleNamespace

import pytest

from evaluation.detox.learning_data import labelled_texts, read_labelled_file, resolve_data_file
from tests.worker_utils import make_dataset
from toxplatform.corpus.models import Prompt
from toxplatform.errors import ApplicationError

pytestmark = pytest.mark.django_db


def params(**overrides):
    return {"max_texts": 128, "data_language": "", "data_file": "", "data_seed": 0} | overrides


def texts_of(dataset, language, toxic):
    return set(Prompt.objects.filter(dataset=dataset, language=language, is_toxic=toxic).values_list("text", flat=True))


def test_dataset_texts_by_gold_label_balanced_capped_and_seeded():
    dataset = make_dataset(per_language=7)  # even indexes toxic: 4 toxic and 3 non-toxic per language
    job = SimpleNamespace(dataset_id=dataset.pk, dataset=dataset, languages=["en", "de"])
    data = labelled_texts(job, params())
    assert len(data["toxic"]) == len(data["nontoxic"]) == 6  # balanced: the smaller label decides
    assert set(data["toxic"]) <= texts_of(dataset, "en", True) | texts_of(dataset, "de", True)
    assert set(data["nontoxic"]) == texts_of(dataset, "en", False) | texts_of(dataset, "de", False)
    assert data["source"] == {"dataset": dataset.slug, "languages": ["en", "de"]}
    assert labelled_texts(job, params()) == data  # the same seed draws the same texts
    capped = labelled_texts(job, params(max_texts=2, data_seed=5))
    assert len(capped["toxic"]) == len(capped["nontoxic"]) == 2
    german = labelled_texts(job, params(data_language="de"))
    assert set(german["toxic"]) <= texts_of(dataset, "de", True) and len(german["nontoxic"]) == 3


def test_too_little_data_is_a_clear_error():
    dataset = make_dataset(per_language=2)  # one toxic and one non-toxic prompt per language
    job = SimpleNamespace(dataset_id=dataset.pk, dataset=dataset, languages=["en"])
    with pytest.raises(ApplicationError, match="needs at least 2 toxic and 2 non-toxic texts"):
        labelled_texts(job, params())


def test_a_file_gives_texts_and_pairs_and_must_stay_inside_the_data_folders(settings, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    settings.DETOX_DATA_ROOTS = [root]
    lines = [{"text": "bad one", "toxic": True}, {"text": "good one", "toxic": False},
             {"toxic": "bad two", "nontoxic": "good two"}]
    (root / "mixed.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    data = read_labelled_file("mixed.jsonl")
    assert data == {"toxic": ["bad one", "bad two"], "nontoxic": ["good one", "good two"],
                    "pairs": [["bad two", "good two"]]}
    job = SimpleNamespace(dataset_id=None, dataset=None, languages=[])
    from_file = labelled_texts(job, params(data_file="mixed.jsonl"))
    assert from_file["source"] == {"file": str((root / "mixed.jsonl").resolve())} and from_file["pairs"]
    outside = tmp_path / "secret.jsonl"
    outside.write_text(json.dumps(lines[0]) + "\n")
    (root / "link.jsonl").symlink_to(outside)
    for name in ("../secret.jsonl", str(outside), "link.jsonl"):
        with pytest.raises(ApplicationError, match="outside the detox data folders"):
            resolve_data_file(name)
