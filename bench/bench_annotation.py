"""Annotation under load: N annotators at once asking for the next item and submitting, through
the real HTTP stack (gunicorn on loopback, sessions, CSRF, the workspace page), on PostgreSQL
or SQLite. Afterwards the database is checked exactly: every item has exactly `overlap`
judgments, no (item, annotator) twice, no error responses.

- **next**: GET /annotations/campaigns/<id>/work/: claims an item and renders the workspace
  an annotator sees (one request);
- **submit**: POST of the answer (302 back to work/);
- **baseline**: GET /healthz (the HTTP stack and one `SELECT 1`) by the same N client threads,
  as many requests as the next calls: the floor any page on this machine pays.

    .venv/bin/python bench/bench_annotation.py --database postgres --annotators 10 50
    .venv/bin/python bench/bench_annotation.py --database sqlite --annotators 10 50

PostgreSQL runs use a scratch database `toxplatform_bench_annotation` (dropped and recreated);
SQLite runs a file in a temporary directory. The clients are Python threads in this process,
on the same machine as the server.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PASSWORD = "bench-password-1"
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PG_DB = "toxplatform_bench_annotation"


def configure(database: str, var_dir: Path) -> str:
    os.environ["TOXPLATFORM_VAR_DIR"] = str(var_dir)
    if database == "postgres":
        import psycopg2

        admin = psycopg2.connect(PG_ADMIN_URL)
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
            cursor.execute(f"CREATE DATABASE {PG_DB}")
        admin.close()
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{PG_DB}"
    else:
        url = f"sqlite:///{var_dir}/bench.sqlite3"
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "toxplatform.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url


def make_campaign(run: str, annotators: int, items: int, overlap: int):
    from annotations import services
    from evaluation.models import EvaluationJob, Generation, ModelSpec
    from toxplatform.accounts.models import Role
    from toxplatform.accounts.services import create_user_with_role
    from toxplatform.corpus.models import Dataset, Prompt

    dataset = Dataset.objects.create(slug=f"bench-{run}", name=f"bench {run}", format="jsonl")
    spec, _ = ModelSpec.objects.get_or_create(name="bench-model", defaults={"location": "/x", "fingerprint": "f" * 64})
    jobs = [EvaluationJob.objects.create(model=spec, detox_method=method, dataset=dataset, status="done", k=1)
            for method in ("none", "system_prompt")]
    prompts = Prompt.objects.bulk_create([
        Prompt(dataset=dataset, language_id="en", external_id=str(i), text=f"Prompt number {i} says that")
        for i in range(items)
    ])
    Generation.objects.bulk_create([
        Generation(job=job, prompt=prompt, sample_index=0, text=f"a continuation of {prompt.external_id} by {job.pk}")
        for prompt in prompts for job in jobs
    ])
    users = [create_user_with_role(username=f"{run}-{i}", password=PASSWORD, role=Role.ANNOTATOR, languages=["en"])
             for i in range(annotators)]
    return services.create_campaign(name=f"bench {run}", kind="pairwise", jobs=jobs, languages=["en"],
                                    categories=["toxicity"], items_per_language=items, overlap=overlap,
                                    daily_cap=100_000, annotators=users), users


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, workers: int, threads: int) -> subprocess.Popen:
    env = dict(os.environ, DEBUG="0", ALLOWED_HOSTS="127.0.0.1,localhost", DB_CONN_MAX_AGE="60")
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "toxplatform.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers),
         "--threads", str(threads), "--worker-class", "gthread", "--log-level", "warning", "--timeout", "120"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    deadline = time.time() + 60
    import requests

    while time.time() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok:
                return server
        except requests.RequestException:
            time.sleep(0.3)
    stop_server(server)
    raise SystemExit("the server did not start")


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


def log_in(session, base: str, username: str) -> None:
    session.get(f"{base}/accounts/login/")
    response = session.post(f"{base}/accounts/login/", allow_redirects=False, data={
        "username": username, "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]})
    if response.status_code != 302:
        raise SystemExit(f"login of {username} failed: {response.status_code}")


ASSIGNMENT = re.compile(r'data-assignment="(\d+)"')


def annotate(base: str, campaign_id: int, username: str, start: threading.Barrier, out: dict) -> None:
    import requests

    session = requests.Session()
    log_in(session, base, username)
    start.wait()
    while True:
        t0 = time.perf_counter()
        page = session.get(f"{base}/annotations/campaigns/{campaign_id}/work/")
        t1 = time.perf_counter()
        match = ASSIGNMENT.search(page.text)
        if page.status_code != 200 or (match is None and "data-queue-state" not in page.text):
            out["errors"].append(f"next {page.status_code}")
            return
        if match is None:  # nothing left
            return
        out["next"].append(t1 - t0)
        response = session.post(f"{base}/annotations/items/{match.group(1)}/answer/", allow_redirects=False, data={
            "toxicity": "left", "time_ms": "1000", "csrfmiddlewaretoken": session.cookies["csrftoken"]})
        out["submit"].append(time.perf_counter() - t1)
        if response.status_code != 302:
            out["errors"].append(f"submit {response.status_code}")


def baseline(base: str, clients: int, requests_total: int) -> list[float]:
    import requests

    times: list[float] = []
    per_client = max(1, requests_total // clients)
    start = threading.Barrier(clients)

    def run():
        session = requests.Session()
        start.wait()
        for _ in range(per_client):
            t0 = time.perf_counter()
            session.get(f"{base}/healthz")
            times.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def percentiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return (values[0] * 1000,) * 3 if values else (float("nan"),) * 3
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[94] * 1000, cuts[98] * 1000


def check(campaign, overlap: int, items: int) -> dict:
    from annotations.models import Assignment, Item, Judgment

    pairs = Counter(Assignment.objects.filter(item__campaign=campaign).values_list("item_id", "annotator_id"))
    done = Counter(Assignment.objects.filter(item__campaign=campaign, state="done").values_list("item_id", flat=True))
    counts = list(Item.objects.filter(campaign=campaign).values_list("done_count", flat=True))
    return {
        "judgments": Judgment.objects.filter(assignment__item__campaign=campaign).count(),
        "over_overlap": sum(1 for c in done.values() if c > overlap),
        "duplicate_pairs": sum(1 for c in pairs.values() if c > 1),
        "items_complete": sum(1 for c in counts if c == overlap),
        "counter_mismatch": sum(1 for item_id, c in Item.objects.filter(campaign=campaign).values_list("id", "done_count")
                                if done.get(item_id, 0) != c),
        "expected": items * overlap,
    }


def run_once(base: str, n: int, items: int, overlap: int) -> dict:
    campaign, users = make_campaign(f"n{n}-{int(time.time())}", n, items, overlap)
    out: dict = {"next": [], "submit": [], "errors": []}
    start = threading.Barrier(n)
    threads = [threading.Thread(target=annotate, args=(base, campaign.pk, user.username, start, out)) for user in users]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    floor = baseline(base, n, len(out["next"]))
    return {"n": n, "elapsed": elapsed, "out": out, "baseline": floor, "check": check(campaign, overlap, items)}


def table(database: str, results: list[dict]) -> str:
    lines = [
        f"| annotators | next p50 / p95 / p99 ms | submit p50 / p95 / p99 ms | /healthz p50 / p95 ms | next p95 vs /healthz p95 | judgments/s | errors | judgments (expected) | over overlap | duplicate pairs |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        nxt, sub, base = percentiles(r["out"]["next"]), percentiles(r["out"]["submit"]), percentiles(r["baseline"])
        c = r["check"]
        lines.append(
            f"| {r['n']} | {nxt[0]:.0f} / {nxt[1]:.0f} / {nxt[2]:.0f} | {sub[0]:.0f} / {sub[1]:.0f} / {sub[2]:.0f} | "
            f"{base[0]:.0f} / {base[1]:.0f} | {nxt[1] / base[1]:.1f}x | {len(r['out']['submit']) / r['elapsed']:.1f} | "
            f"{len(r['out']['errors'])} | {c['judgments']} ({c['expected']}) | {c['over_overlap']} | {c['duplicate_pairs']} |"
        )
    return "\n".join(lines)


def machine() -> str:
    import django

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores (shared), Python {platform.python_version()}, Django {django.get_version()}, "
            f"load average at start {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--annotators", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    args = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="bench-annotation-"))
    load = os.getloadavg()[0]
    configure(args.database, var_dir)
    port = free_port()
    server = start_server(port, args.workers, args.threads)
    base = f"http://127.0.0.1:{port}"
    try:
        results = [run_once(base, n, args.items, args.overlap) for n in args.annotators]
    finally:
        stop_server(server)
        from django.db import connections

        connections.close_all()
        shutil.rmtree(var_dir, ignore_errors=True)
    text = (f"{args.database}, {args.items} items x overlap {args.overlap}, gunicorn {args.workers} workers x "
            f"{args.threads} threads, load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at the end:\n\n"
            + table(args.database, results))
    print(machine())
    print(text)
    for r in results:
        if r["out"]["errors"]:
            print(f"errors at {r['n']}: {Counter(r['out']['errors']).most_common(5)}")


if __name__ == "__main__":
    main()
