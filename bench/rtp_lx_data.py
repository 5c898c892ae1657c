"""RTP-LX read straight from the release files (no database), for the trained-scorer study
(bench/trained_scorer_study.py). The platform itself reads labels from PromptLabel rows."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from toxplatform.corpus.importers.rtp_lx import CATEGORIES, FILE_LANGUAGES, FIRST_CULTURAL_INDEX

DATA = Path(os.environ.get("RTP_LX_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "rtp-lx"))
if not DATA.is_dir():
    DATA = Path("/work/shared/data/rtp-lx")


def load(languages=None) -> list[dict]:
    """One dict per prompt: language, index (int or None), group, text, raters {slug: [3 ints]}."""
    rows = []
    for code, language in FILE_LANGUAGES.items():
        if languages and language not in languages:
            continue
        text = (DATA / f"RTP_LX_{code}.json").read_text(encoding="utf-8")
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            obj = json.loads(line)
            index = obj["Index"]
            index = int(index) if str(index).isdigit() else None
            transcreated = index is not None and index < FIRST_CULTURAL_INDEX
            rows.append({
                "language": language,
                "index": index,
                "group": f"t{index}" if transcreated else f"{language}:{number}",
                "transcreated": transcreated,
                "text": obj["Prompt"],
                "raters": {slug: [int(round(v)) for v in obj["AnnotationsRaw"][key]] for key, slug in CATEGORIES.items()},
            })
    return rows


def embed(rows, progress=True) -> np.ndarray:
    from evaluation.scorers.encoders import EmbeddingCache, get_encoder

    cache = EmbeddingCache(get_encoder())
    report = (lambda done, total: print(f"\r{done}/{total}", end="", flush=True)) if progress else None
    vectors = cache.embed([row["text"] for row in rows], progress=report, shard_size=512)
    if progress:
        print()
    return vectors


if __name__ == "__main__":
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toxplatform.settings")
    django.setup()
    import time

    started = time.time()
    # The languages of the calibration figures first, then the rest.
    first = load({"en", "de", "ar", "hi", "ru"})
    embed(first)
    print("first 5 languages", len(first), f"{time.time() - started:.0f} s", flush=True)
    rows = load()
    vectors = embed(rows)
    print(len(rows), vectors.shape, f"{time.time() - started:.0f} s")
