"""A small real slice of RTP-LX for the scorer-trust tests: from four languages, the prompts
of the same transcreation groups (Index 0-54) plus the first culturally specific ones, imported
with the real importer into the test database (committed for a module, removed after)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from toxplatform.corpus.models import Dataset, Prompt, PromptLabel
from toxplatform.corpus.services import import_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
RTP_LX_DIR = Path(os.environ.get("RTP_LX_DIR", REPO_ROOT.parent / "shared" / "data" / "rtp-lx"))
if not (RTP_LX_DIR / "RTP_LX_EN.json").exists() and Path("/work/shared/data/rtp-lx/RTP_LX_EN.json").exists():
    RTP_LX_DIR = Path("/work/shared/data/rtp-lx")
RELEASE_PRESENT = (RTP_LX_DIR / "RTP_LX_EN.json").exists()
FILES = {"en": "EN", "de": "DE", "ar": "AR", "ru": "RU"}
GROUPS = 55
CULTURAL = 12
SLUG = "rtp-lx"


def write_slice(directory: Path) -> Path:
    """RTP_LX_<CODE>.json files holding the slice, lines as in the release (split at \\n only)."""
    directory.mkdir(parents=True, exist_ok=True)
    for code in FILES.values():
        lines = (RTP_LX_DIR / f"RTP_LX_{code}.json").read_bytes().decode("utf-8").split("\n")
        kept, cultural = [], 0
        for line in lines:
            if not line.strip():
                continue
            index = json.loads(line)["Index"]
            number = int(index) if str(index).isdigit() else None
            if number is not None and number < GROUPS:
                kept.append(line)
            elif (number is None or number >= 999) and cultural < CULTURAL:
                kept.append(line)
                cultural += 1
        (directory / f"RTP_LX_{code}.json").write_bytes("\n".join(kept).encode("utf-8"))
    return directory


def import_slice(directory: Path):
    return import_dataset("rtp-lx", write_slice(directory))


def remove_dataset() -> None:
    from evaluation.scorer_trust.models import ImportedScoreSet, ScorerEvaluation, TrainingRun

    ScorerEvaluation.objects.filter(dataset__slug=SLUG).delete()
    ImportedScoreSet.objects.filter(dataset__slug=SLUG).delete()
    TrainingRun.objects.filter(dataset__slug=SLUG).delete()
    PromptLabel.objects.filter(prompt__dataset__slug=SLUG).delete()
    Prompt.objects.filter(dataset__slug=SLUG).delete()
    Dataset.objects.filter(slug=SLUG).delete()
