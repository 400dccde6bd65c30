"""A throw-away `dagster dev` for browser tests: start it in its own session, wait for the code
location to load (over GraphQL), and stop every process it spawned (webserver, daemon, code
server, run workers) by signalling its process group. Its environment is the code location's
(the storage resource's variables: home, inbox, the pipeline's keys and the center's PUBLIC
key, never the center's private keys) plus a private Dagster instance."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from kodomo_assets.lib.paths import REPO_ROOT
from kodomo_assets.lib.platform.storage import KodomoStorage
from kodomo_assets_tests.conftest import pipeline_env

# The dagster CLI of the virtualenv running the tests (normally .venv/bin/dagster).
DAGSTER = Path(sys.executable).with_name("dagster")
if not DAGSTER.exists():
    DAGSTER = REPO_ROOT / ".venv" / "bin" / "dagster"

WORKSPACE_QUERY = """
query { workspaceOrError { __typename
  ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""

RUN_QUERY = """
query Run($runId: ID!) { runOrError(runId: $runId) { __typename
  ... on Run { runId status tags { key value } assetSelection { path } } } }
"""

RUNS_QUERY = """
query { runsOrError(limit: 20) { __typename
  ... on Runs { results { runId status tags { key value } assetSelection { path } } } } }
"""

DONE = {"SUCCESS", "FAILURE", "CANCELED"}


class GraphQLError(RuntimeError):
    """The webserver answered with GraphQL errors."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes() -> list[tuple[int, int, int, str]]:
    """(pid, process group, session, command line) of every live process (Linux /proc), zombies
    left out."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            out.append((int(entry.name), int(fields[2]), int(fields[3]), cmd.strip()))
        except (OSError, IndexError, ValueError):
            continue  # exited while we looked
    return out


def session_members(sid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every live process in session SID."""
    return [(pid, cmd) for pid, _, s, cmd in _processes() if s == sid]


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line holds TEXT. The webserver, daemon and code servers of
    an instance carry its DAGSTER_HOME in --instance-ref, and the compute-log tails name files
    under it: a check that holds even for a process that left the session."""
    me = os.getpid()
    return [(pid, cmd) for pid, _, _, cmd in _processes() if text in cmd and pid != me]


@dataclass
class DagsterDev:
    proc: subprocess.Popen
    url: str
    log: Path
    stopped_with: str = ""  # the last signal stop() needed
    stop_seconds: float = 0.0
    killed: list[tuple[int, str]] = field(default_factory=list)  # what SIGTERM did not stop

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        r = requests.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=timeout,
        )
        r.raise_for_status()
        body = r.json()
        if body.get("errors"):
            raise GraphQLError(body["errors"])
        return body["data"]

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_loaded(self, timeout: float = 90) -> float:
        """Poll until the code location reports LOADED; return the seconds it took."""
        start = time.monotonic()
        last = None
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"dagster dev exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                data = self.graphql(WORKSPACE_QUERY, timeout=5)["workspaceOrError"]
                last = data
                entries = data.get("locationEntries") or []
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    errors = [
                        e
                        for e in entries
                        if e["locationOrLoadError"]["__typename"] == "PythonError"
                    ]
                    if errors:
                        raise RuntimeError(f"code location failed to load: {errors}")
                    return time.monotonic() - start
            except (requests.RequestException, ValueError, GraphQLError) as err:
                last = repr(err)  # webserver not listening or not ready yet
            time.sleep(0.5)
        raise TimeoutError(
            f"code location not loaded after {timeout}s (last: {last}):\n{self.log_tail()}"
        )

    def run(self, run_id: str) -> dict:
        return self.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]

    def runs(self) -> list[dict]:
        return self.graphql(RUNS_QUERY)["runsOrError"]["results"]

    def wait_run(self, run_id: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if run.get("status") in DONE:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"run {run_id} still {run.get('status')} after {timeout}s:\n{self.log_tail()}"
                )
            time.sleep(1)

    def stop(self, timeout: float = 20, grace: float = 3) -> list[tuple[int, str]]:
        """SIGTERM the whole process group; SIGKILL what is left once `dagster dev` itself has
        exited (after GRACE seconds) or after TIMEOUT. Return the processes of the session still
        alive afterwards (should be none).

        The group SIGTERM races dagster dev's own shutdown: now and then its code-server manager
        sees the code server exit first and starts a new one ("Restarting the code server
        process" in the log) which outlives dagster dev until its heartbeat times out. Hence the
        SIGKILL of the rest GRACE seconds after the leader has gone."""
        sid = self.proc.pid  # leader of its own session and process group
        start = time.monotonic()
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
            if self.proc.poll() is not None and not session_members(sid):
                break
            self.stopped_with = sig.name
            if sig == signal.SIGKILL:
                self.killed = session_members(sid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(sid, sig)
            # a member that moved to a process group of its own (none today) is signalled alone
            for pid, pgid, s, _ in _processes():
                if s == sid and pgid != sid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:  # also reaps the leader
                    if not session_members(sid):
                        break
                    deadline = min(deadline, time.monotonic() + grace)
                time.sleep(0.2)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1)
        self.stop_seconds = time.monotonic() - start
        return session_members(sid)


def dev_environment(storage: KodomoStorage, dagster_home: Path, tmp: Path) -> dict[str, str]:
    """The environment of a `dagster dev` on `storage`: the code location's variables
    (pipeline_env), DAGSTER_HOME holding a copy of the bundled dagster.yaml, and TMPDIR (dagster
    dev's sockets and workspace file). No KODOMO_ variable of the developer's shell leaks in."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    bundled = REPO_ROOT / "dagster_home" / "dagster.yaml"
    (dagster_home / "dagster.yaml").write_bytes(bundled.read_bytes())
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KODOMO_")}
    env.update(pipeline_env(storage), DAGSTER_HOME=str(dagster_home), TMPDIR=str(tmp))
    return env


def start_dagster_dev(env: dict[str, str], log: Path, cwd: Path = REPO_ROOT) -> DagsterDev:
    """`dagster dev -m kodomo_assets` on a free loopback port, in a new session."""
    port = free_port()
    fh = open(log, "wb")  # noqa: SIM115 - handed to the child, closed right after
    try:
        proc = subprocess.Popen(
            [str(DAGSTER), "dev", "-m", "kodomo_assets", "-p", str(port), "-h", "127.0.0.1"],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        fh.close()
    return DagsterDev(proc=proc, url=f"http://127.0.0.1:{port}", log=log)
