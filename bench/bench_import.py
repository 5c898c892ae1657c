"""Import throughput: a synthetic PolygloToxicityPrompts-shaped file through the `ptp` importer.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/bench_import.py

Generates N prompts (default 425,000, PTP's size: 25,000 in each of 17 languages, each
with the 8 Perspective scores, so 8 label rows per prompt) as JSON Lines in a temp dir,
then, in a scratch database it creates and drops (toxplatform_bench):

1. baseline: the same rows written the fastest plain way, psycopg2 COPY into the same
   tables (parse each line once, no checks, no upsert), in one transaction;
2. import: `corpus.services.import_dataset("ptp", ...)` into the emptied tables (check
   pass + write pass, upserts, one transaction);
3. re-import: the same file again (everything unchanged, nothing written).

Reports prompts/s and the ratio to the baseline, with the machine it ran on. Speed is
measured here, never asserted in tests.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "toxplatform_bench"
# The 17 languages of PolygloToxicityPrompts.
PTP_LANGUAGES = ["ar", "cs", "de", "en", "es", "hi", "id", "it", "ja", "ko", "nl", "pl", "pt", "ru", "sv", "zh", "fr"]
ATTRIBUTES = ["toxicity", "severe_toxicity", "identity_attack", "insult", "threat", "profanity",
              "sexually_explicit", "flirtation"]
CATEGORY = {"toxicity": "toxicity", "severe_toxicity": "severe-toxicity", "identity_attack": "identity-attack",
            "insult": "insult", "threat": "threat", "profanity": "profanity",
            "sexually_explicit": "sexual-content", "flirtation": "flirtation"}
WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which but "
         "have an they you were her she there been one all we their has would when if so no will more "
         "Wetter Sprache langue palabra 天気 言葉 날씨 мир слово كلمة शब्द").split()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=425_000)
    parser.add_argument("--mean-chars", type=int, default=260, help="mean prompt length in characters")
    parser.add_argument("--skip-reimport", action="store_true")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the scratch database")
    return parser.parse_args()


def generate(path: Path, prompts: int, mean_chars: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    per_language = -(-prompts // len(PTP_LANGUAGES))
    with path.open("w", encoding="utf-8") as fh:
        written = 0
        for language in PTP_LANGUAGES:
            for i in range(min(per_language, prompts - written)):
                words, length = [], 0
                target = rng.randint(mean_chars // 3, mean_chars * 5 // 3)
                while length < target:
                    word = rng.choice(WORDS)
                    words.append(word)
                    length += len(word) + 1
                toxicity = rng.betavariate(1.2, 4)
                record = {
                    "text": " ".join(words),
                    "meta_data": {"data_category": "web", "lang": language, "timestamp": "2019-10-15T04:30:21Z",
                                  "url": f"https://example.org/{language}/{i}"},
                }
                for attribute in ATTRIBUTES:
                    record[attribute] = round(toxicity if attribute == "toxicity" else toxicity * rng.random(), 6)
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                written += 1


def database_urls() -> tuple[str, str]:
    url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/postgres")
    return url, urlunsplit(parts._replace(path="/" + BENCH_DB))


def admin(url: str, sql: str) -> None:
    import psycopg2

    connection = psycopg2.connect(url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(sql)
    connection.close()


def copy_rows(cursor, table: str, columns: list[str], rows) -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    buffer.seek(0)
    cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer)


def baseline_copy(path: Path, chunk: int = 50_000) -> tuple[float, int, int]:
    """Parse once and COPY prompts, then their labels: the floor any importer is measured against."""
    from django.db import connection, transaction

    from toxplatform.corpus.models import Dataset

    started = time.perf_counter()
    with transaction.atomic():
        dataset = Dataset.objects.create(slug="baseline", name="baseline", format="ptp")
        scores, prompt_rows = [], []
        with connection.cursor() as django_cursor:
            cursor = django_cursor.cursor  # the raw psycopg2 cursor
            with path.open("rb") as fh:
                for line_number, raw in enumerate(fh, start=1):
                    record = json.loads(raw)
                    language = record["meta_data"]["lang"]
                    external_id = f"{path.stem}:{line_number}"
                    values = [record[a] for a in ATTRIBUTES]
                    scores.append((language, external_id, values))
                    prompt_rows.append((dataset.id, language, external_id, "", record["text"], False,
                                        values[0] >= 0.5, json.dumps({"meta_data": record["meta_data"]})))
                    if len(prompt_rows) == chunk:
                        copy_rows(cursor, "corpus_prompt", PROMPT_COLUMNS, prompt_rows)
                        prompt_rows = []
            copy_rows(cursor, "corpus_prompt", PROMPT_COLUMNS, prompt_rows)
            cursor.execute("SELECT language_id, external_id, id FROM corpus_prompt WHERE dataset_id = %s", [dataset.id])
            ids = {(language, external_id): pk for language, external_id, pk in cursor.fetchall()}
            label_rows = []
            labels = 0
            for language, external_id, values in scores:
                prompt_id = ids[(language, external_id)]
                for attribute, value in zip(ATTRIBUTES, values, strict=True):
                    label_rows.append((prompt_id, CATEGORY[attribute], value, "[]", 0, "perspective", 0.0, 1.0))
                if len(label_rows) >= chunk * 8:
                    copy_rows(cursor, "corpus_promptlabel", LABEL_COLUMNS, label_rows)
                    labels += len(label_rows)
                    label_rows = []
            copy_rows(cursor, "corpus_promptlabel", LABEL_COLUMNS, label_rows)
            labels += len(label_rows)
    return time.perf_counter() - started, len(scores), labels


PROMPT_COLUMNS = ["dataset_id", "language_id", "external_id", "group_id", "text", "culturally_specific", "is_toxic",
                  "metadata"]
LABEL_COLUMNS = ["prompt_id", "category_id", "value", "rater_values", "num_raters", "source", "scale_min",
                 "scale_max"]


def empty_corpus_tables() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE corpus_promptlabel, corpus_prompt, corpus_dataset CASCADE")
        # Start each run with no dirty pages left over from the one before.
        cursor.execute("CHECKPOINT")


def timed_import(path: Path):
    from toxplatform.corpus.services import import_dataset

    marks = {}

    def progress(stage, done, total):
        if stage == "check" and done == total:
            marks["checked"] = time.perf_counter()

    started = time.perf_counter()
    report = import_dataset("ptp", path, progress=progress)
    finished = time.perf_counter()
    return report, finished - started, marks.get("checked", started) - started


def machine_info(database_version: str) -> dict[str, str]:
    import django
    import psycopg2

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "cpu": f"{model}, {os.cpu_count()} cores",
        "load average at start": load,
        "python": platform.python_version(),
        "django": django.get_version(),
        "psycopg2": psycopg2.__version__.split()[0],
        "postgresql": database_version,
    }


def main() -> None:
    args = parse_args()
    admin_url, bench_url = database_urls()
    admin(admin_url, f"DROP DATABASE IF EXISTS {BENCH_DB}")
    admin(admin_url, f"CREATE DATABASE {BENCH_DB}")
    os.environ["DATABASE_URL"] = bench_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toxplatform.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-a-server")  # it serves nothing
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    try:
        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            info = machine_info(cursor.fetchone()[0])
        with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
            path = Path(tmp) / "ptp_synthetic.jsonl"
            started = time.perf_counter()
            generate(path, args.prompts, args.mean_chars)
            size_mb = path.stat().st_size / 1e6
            print(f"generated {args.prompts:,} prompts ({size_mb:.0f} MB) in {time.perf_counter() - started:.1f}s",
                  flush=True)

            empty_corpus_tables()
            base_seconds, base_prompts, base_labels = baseline_copy(path)
            print(f"baseline COPY: {base_prompts:,} prompts + {base_labels:,} labels in {base_seconds:.1f}s",
                  flush=True)

            empty_corpus_tables()
            report, seconds, check_seconds = timed_import(path)
            totals = report.totals
            assert totals.created == args.prompts and totals.labels_created == base_labels, totals
            print(f"import: {seconds:.1f}s (check pass {check_seconds:.1f}s)", flush=True)

            re_seconds = None
            if not args.skip_reimport:
                again, re_seconds, _ = timed_import(path)
                assert not again.changed and again.totals.unchanged == args.prompts
                print(f"re-import (nothing changes): {re_seconds:.1f}s", flush=True)
    finally:
        connection.close()
        if not args.keep_db:
            admin(admin_url, f"DROP DATABASE IF EXISTS {BENCH_DB}")

    rows = [
        ("baseline: psycopg2 COPY, no checks", base_seconds),
        ("`import_dataset ptp` (check + upsert)", seconds),
    ]
    if re_seconds is not None:
        rows.append(("re-import, nothing changes", re_seconds))
    print()
    print(f"{args.prompts:,} prompts x 8 labels ({args.prompts * 9:,} rows), file {size_mb:.0f} MB")
    print("| run | seconds | prompts/s | rows/s | vs baseline |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, secs in rows:
        print(f"| {name} | {secs:.1f} | {args.prompts / secs:,.0f} | {args.prompts * 9 / secs:,.0f} | "
              f"{secs / base_seconds:.2f}x |")
    print()
    for key, value in info.items():
        print(f"- {key}: {value}")


if __name__ == "__main__":
    main()
