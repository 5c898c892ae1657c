"""The embedded default (SQLite, as the demo runs) under concurrent annotators: no SKIP LOCKED
there, claims and submits are serialized by a write at their start. Eight processes race on
one campaign in a child process with its own migrated SQLite file."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_processes_racing_on_sqlite_never_exceed_the_overlap(tmp_path):
    script = Path(__file__).with_name("sqlite_race.py")
    run = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=600,
                         cwd=script.parents[2])
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["vendor"] == "sqlite"
    assert result["errors"] == []
    assert result["done"] == 12 * 3
    assert result["done_counts"] == [3] * 12 and result["done_assignments"] == [3] * 12
    assert result["max_pair"] == 1
