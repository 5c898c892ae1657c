"""Private PostgreSQL and Redis servers for failure tests: their own folders and ports, so a
test can stop and restart them without touching the shared servers on 5432 and 6379
(../shared/SERVICES.md).

    with PrivatePostgres() as pg:
        url = pg.url                     # postgres://postgres@127.0.0.1:<port>/postgres
        pg.restart()                     # every open connection is cut
        pg.stop(keep=True); ...; pg.start_again()   # an outage of any length

    with PrivateRedis() as broker:       # no persistence, as deployed on these machines
        broker.restart()                 # every queued message is lost
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def _pg_bin(name: str) -> str:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"PostgreSQL's {name} is not installed")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivatePostgres:
    def __init__(self):
        # Its own folder under /tmp: pytest's tmp_path sits in a root-only folder, which the
        # postgres user cannot enter.
        self.folder = Path(tempfile.mkdtemp(prefix="toxplatform-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        # PostgreSQL refuses to run as root: as the postgres user then.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}\n{done.stderr}")

    def start(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        self._pg_ctl("start")
        return self

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(_pg_bin("pg_ctl"), action, "-D", str(self.data), "-w", "-l", str(self.folder / "log"),
                  "-o", options, *extra)

    def restart(self) -> None:
        """A fast restart: every client connection is terminated."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self, *, keep: bool = False) -> None:
        """Stop the server (fast: clients are cut); keep=True leaves its data for start_again()."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._pg_ctl("stop", "-m", "fast" if keep else "immediate")
        finally:
            if not keep:
                shutil.rmtree(self.folder, ignore_errors=True)

    def start_again(self) -> None:
        self._pg_ctl("start")

    def __enter__(self) -> PrivatePostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class PrivateRedis:
    """A redis-server on its own port that keeps nothing on disk: a restart loses every message."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> PrivateRedis:
        binary = shutil.which("redis-server") or pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
