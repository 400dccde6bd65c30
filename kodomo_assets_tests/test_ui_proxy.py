"""The Dagster UI behind a login: scripts/ui_proxy.sh starts a real nginx in front of a real
`dagster-webserver`. Without the right user and password nothing gets through (pages, GraphQL,
the websocket); with them the UI answers, and the access log names the login of every request
(a launched purge included) but never its password. The webserver listens on 127.0.0.1 only.

Skipped only when nginx is missing and the script could not install it (Debian's nginx package);
CI installs it in scripts/test.sh."""

from __future__ import annotations

import base64
import json
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster
import pytest
import requests

from kodomo_assets_tests.conftest import make_keys, make_storage, pipeline_env
from kodomo_assets_tests.ui_server import (
    DAGSTER,
    WORKSPACE_QUERY,
    DagsterDev,
    free_port,
    processes_mentioning,
    session_members,
)

# The script that belongs with this test (the package may be installed from another checkout).
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "ui_proxy.sh"
WEBSERVER = DAGSTER.with_name("dagster-webserver")
USER = "steward"
PASSWORD = "kodomo-" + secrets.token_hex(8)  # distinctive, so that the log check means something

# What the UI sends when a steward launches the purge (op name in the URL, as the UI does).
LAUNCH = """mutation LaunchPipelineExecution($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) { __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message } } }"""
PURGE = {
    "selector": {
        "repositoryLocationName": "kodomo_assets",
        "repositoryName": "__repository__",
        "jobName": "retention_purge",
    },
    "runConfigData": {
        "ops": {"purge_months": {"config": {"months": ["2022-04"], "dry_run": True}}}
    },
    "mode": "default",
}


@dataclass
class Stack:
    server: DagsterDev
    proxy_dir: Path
    url: str  # the proxy
    upstream_port: int
    proxy_port: int


def script(*args: str, password: str | None = None, **more_env: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KODOMO_UI_")}
    env.update(KODOMO_UI_USER=USER, **more_env)
    if password is not None:
        env["KODOMO_UI_PASSWORD"] = password
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600
    )


def nginx_installed() -> bool:
    return bool(shutil.which("nginx")) or Path("/usr/sbin/nginx").exists()


def nginx_pids(proxy_dir: Path) -> list[int]:
    """The master started from PROXY_DIR and its workers (whose titles do not name the dir)."""
    masters = [pid for pid, _ in processes_mentioning(str(proxy_dir / "nginx.conf"))]
    children = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) in masters
            ):
                children.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return masters + children


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stop_proxy(proxy_dir: Path) -> list[int]:
    """`ui_proxy.sh stop`; the nginx processes of PROXY_DIR still alive 5 s later."""
    pids = nginx_pids(proxy_dir)
    stopped = script("stop", str(proxy_dir))
    assert stopped.returncode == 0, stopped.stderr
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on PORT, from /proc/net/tcp{,6}."""
    found = set()
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            # each 32-bit word is printed in host (little-endian) order
            raw = b"".join(bytes.fromhex(addr[i : i + 8])[::-1] for i in range(0, len(addr), 8))
            found.add(socket.inet_ntop(family, raw))
    return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """nginx from scripts/ui_proxy.sh in front of `dagster-webserver` on an empty demo setup.
    Both are stopped, and checked gone, afterwards."""
    work = tmp_path_factory.mktemp("ui_proxy")
    # Not under pytest's tmp dir: as root, the nginx workers run as www-data, and
    # /tmp/pytest-of-root is closed to other users.
    proxy_dir = Path(tempfile.mkdtemp(prefix="kodomo-ui-proxy-"))
    upstream_port, proxy_port = free_port(), free_port()
    server = None
    try:
        started = script(
            "start", str(proxy_dir), str(proxy_port), str(upstream_port), password=PASSWORD
        )
        if started.returncode != 0:
            if not nginx_installed():
                pytest.skip(
                    "nginx is not installed and scripts/ui_proxy.sh could not install "
                    "Debian's nginx package with apt-get:\n" + started.stderr[-2000:]
                )
            pytest.fail("scripts/ui_proxy.sh start failed:\n" + started.stderr[-4000:])

        dagster_home, secrets_dir, tmp = (work / n for n in ("dagster_home", "secrets", "tmp"))
        dagster_home.mkdir()
        tmp.mkdir()
        shutil.copy(ROOT / "dagster_home" / "dagster.yaml", dagster_home / "dagster.yaml")
        env = {k: v for k, v in os.environ.items() if k != "KODOMO_POLICY"}
        env.update(
            pipeline_env(make_storage(work / "home", work / "inbox", make_keys(secrets_dir))),
            DAGSTER_HOME=str(dagster_home),
            TMPDIR=str(tmp),
        )  # the code server's socket
        (work / "inbox").mkdir()
        log = work / "webserver.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                [
                    str(WEBSERVER),
                    "-m",
                    "kodomo_assets",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(upstream_port),
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # its own group: stop() signals the code server too
        server = DagsterDev(proc=proc, url=f"http://127.0.0.1:{upstream_port}", log=log)
        print(f"code location loaded in {server.wait_loaded(timeout=90):.1f}s")
        yield Stack(server, proxy_dir, f"http://127.0.0.1:{proxy_port}", upstream_port, proxy_port)
    finally:
        nginx_left, left = stop_proxy(proxy_dir), []
        if server is not None:
            left = server.stop()
            left += processes_mentioning(str(work / "dagster_home"))
        shutil.rmtree(proxy_dir, ignore_errors=True)
        assert not nginx_left, f"nginx processes left behind: {nginx_left}"
        assert not left, f"dagster processes left behind: {left}"
        if server is not None:
            assert not session_members(server.proc.pid)


def read_logs(stack: Stack, since: int = 0) -> list[dict]:
    """Access log lines from byte SINCE on; checks on the way that neither log holds the
    password."""
    for name in ("access.log", "error.log"):
        assert PASSWORD not in (stack.proxy_dir / name).read_text(), f"password in {name}"
    with open(stack.proxy_dir / "access.log", "rb") as fh:
        fh.seek(since)
        return [json.loads(line) for line in fh.read().decode().splitlines()]


def log_size(stack: Stack) -> int:
    return (stack.proxy_dir / "access.log").stat().st_size


def wait_log(stack: Stack, since: int, count: int) -> list[dict]:
    """nginx writes a line just after the response: wait for COUNT new ones."""
    deadline = time.monotonic() + 5
    while len(lines := read_logs(stack, since)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(lines) == count, lines
    return lines


def graphql(
    stack: Stack,
    query: str,
    auth: tuple[str, str] | None,
    op: str = "",
    variables: dict | None = None,
) -> requests.Response:
    return requests.post(
        f"{stack.url}/graphql" + (f"?op={op}" if op else ""),
        auth=auth,
        json={"query": query, "variables": variables or {}},
        timeout=30,
    )


def websocket(stack: Stack, auth: tuple[str, str] | None) -> tuple[str, dict | None]:
    """Open the UI's GraphQL websocket through the proxy: the status line, and the answer to
    `connection_init` when the upgrade went through."""
    with socket.create_connection(("127.0.0.1", stack.proxy_port), timeout=10) as s:
        lines = [
            "GET /graphql HTTP/1.1",
            f"Host: 127.0.0.1:{stack.proxy_port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Protocol: graphql-ws",
        ]
        if auth:
            token = base64.b64encode(":".join(auth).encode()).decode()
            lines.append(f"Authorization: Basic {token}")
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        head, data = data.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n")[0].decode()
        if " 101 " not in status:
            return status, None
        payload = json.dumps({"type": "connection_init", "payload": {}}).encode()
        mask = os.urandom(4)  # clients must mask their frames
        s.sendall(
            bytes([0x81, 0x80 | len(payload)])
            + mask
            + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        )
        while len(data) < 2 or len(data) < 2 + (data[1] & 0x7F):
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        assert data[0] == 0x81 and data[1] < 126, data  # one short unmasked text frame
        return status, json.loads(data[2 : 2 + data[1]])


def test_refuses_without_the_right_login(stack: Stack) -> None:
    since, runs = log_size(stack), len(stack.server.runs())
    wrong = [None, (USER, "wrong-password"), ("intruder", PASSWORD), (USER, "")]
    for auth in wrong:
        page = requests.get(f"{stack.url}/", auth=auth, timeout=30)
        assert page.status_code == 401, (auth, page.status_code)
        assert page.headers["WWW-Authenticate"] == 'Basic realm="kodomo_assets"'
        for path in ("/server_info", "/graphql", "/_next/static/none.js"):
            assert requests.get(stack.url + path, auth=auth, timeout=30).status_code == 401
        answer = graphql(stack, "{ version }", auth)
        assert answer.status_code == 401 and "version" not in answer.text
        launch = graphql(stack, LAUNCH, auth, "LaunchPipelineExecution", {"executionParams": PURGE})
        assert launch.status_code == 401
        assert websocket(stack, auth) == ("HTTP/1.1 401 Unauthorized", None)
    # a client cannot name itself: the header is the proxy's, and no login means no entry
    forged = requests.get(
        f"{stack.url}/server_info", headers={"X-Forwarded-User": USER}, timeout=30
    )
    assert forged.status_code == 401
    assert len(stack.server.runs()) == runs  # nothing was launched

    lines = wait_log(stack, since, 7 * len(wrong) + 1)
    assert {line["status"] for line in lines} == {401}
    # a wrong password still records the name that was tried
    assert {line["user"] for line in lines} == {"", USER, "intruder"}


def test_serves_the_ui_with_the_login(stack: Stack) -> None:
    auth = (USER, PASSWORD)
    since = log_size(stack)
    info = requests.get(f"{stack.url}/server_info", auth=auth, timeout=30)
    assert info.status_code == 200
    assert info.json()["dagster_webserver_version"] == dagster.__version__
    page = requests.get(f"{stack.url}/", auth=auth, timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    version = graphql(stack, "{ version }", auth)
    assert version.status_code == 200
    assert version.json() == {"data": {"version": dagster.__version__}}
    workspace = graphql(stack, WORKSPACE_QUERY, auth, "WorkspaceQuery")
    entries = workspace.json()["data"]["workspaceOrError"]["locationEntries"]
    assert [(e["name"], e["loadStatus"]) for e in entries] == [("kodomo_assets", "LOADED")]

    lines = wait_log(stack, since, 4)
    assert [(line["user"], line["status"]) for line in lines] == [(USER, 200)] * 4
    assert [line["request"] for line in lines] == [
        "GET /server_info HTTP/1.1",
        "GET / HTTP/1.1",
        "POST /graphql HTTP/1.1",
        "POST /graphql?op=WorkspaceQuery HTTP/1.1",
    ]
    assert all(line["mutation"] == "" for line in lines)  # queries are not copied into the log


def test_websocket_passes_the_login(stack: Stack) -> None:
    since = log_size(stack)
    status, answer = websocket(stack, (USER, PASSWORD))
    assert status == "HTTP/1.1 101 Switching Protocols"
    assert answer == {"type": "connection_ack"}
    (line,) = wait_log(stack, since, 1)
    assert (line["user"], line["request"], line["status"]) == (USER, "GET /graphql HTTP/1.1", 101)


def test_a_launched_purge_names_its_login(stack: Stack) -> None:
    since = log_size(stack)
    launched = graphql(
        stack, LAUNCH, (USER, PASSWORD), "LaunchPipelineExecution", {"executionParams": PURGE}
    )
    assert launched.status_code == 200
    result = launched.json()["data"]["launchPipelineExecution"]
    assert result["__typename"] == "LaunchRunSuccess", result
    # no daemon here: the run stays queued and never runs
    assert stack.server.run(result["run"]["runId"])["status"] == "QUEUED"

    (line,) = wait_log(stack, since, 1)
    assert line["user"] == USER and line["status"] == 200
    assert line["request"] == "POST /graphql?op=LaunchPipelineExecution HTTP/1.1"
    assert line["op"] == "LaunchPipelineExecution"
    body = json.loads(line["mutation"])  # what was launched, from the request itself
    assert body["variables"]["executionParams"]["selector"]["jobName"] == "retention_purge"


def test_users_are_added_without_a_restart(stack: Stack) -> None:
    # a generated password: printed once, kept for handing over
    added = script("adduser", str(stack.proxy_dir), "hanako")
    assert added.returncode == 0, added.stderr
    (kept,) = [
        line
        for line in (stack.proxy_dir / "ui-password").read_text().splitlines()
        if line.startswith("hanako:")
    ]
    generated = kept.split(":", 1)[1]
    assert generated in added.stderr and generated not in added.stdout
    assert (
        requests.get(f"{stack.url}/server_info", auth=("hanako", generated), timeout=30).status_code
        == 200
    )

    # a password given: the old one stops working, the handed-over copy goes
    changed = script("adduser", str(stack.proxy_dir), "hanako", password="hanako-" + PASSWORD)
    assert changed.returncode == 0, changed.stderr
    assert (
        requests.get(f"{stack.url}/server_info", auth=("hanako", generated), timeout=30).status_code
        == 401
    )
    assert (
        requests.get(
            f"{stack.url}/server_info", auth=("hanako", "hanako-" + PASSWORD), timeout=30
        ).status_code
        == 200
    )
    assert not (stack.proxy_dir / "ui-password").exists()

    # start again without a password: same nginx reloaded, the steward's password kept
    again = script("start", str(stack.proxy_dir), str(stack.proxy_port), str(stack.upstream_port))
    assert again.returncode == 0, again.stderr
    assert "password kept" in again.stderr and "reloading" in again.stderr
    assert (
        requests.get(f"{stack.url}/server_info", auth=(USER, PASSWORD), timeout=30).status_code
        == 200
    )

    htpasswd = stack.proxy_dir / "htpasswd"
    text = htpasswd.read_text()
    assert sorted(line.split(":")[0] for line in text.splitlines()) == ["hanako", USER]
    assert all(line.split(":", 1)[1].startswith("$6$") for line in text.splitlines())
    assert PASSWORD not in text and generated not in text
    mode = htpasswd.stat()
    assert stat.S_IMODE(mode.st_mode) == 0o600
    if os.geteuid() == 0:  # the workers, not root, read it
        assert pwd.getpwuid(mode.st_uid).pw_name == "www-data"
    read_logs(stack)


def test_webserver_and_proxy_listen_on_loopback_only(stack: Stack) -> None:
    assert listening_addresses(stack.upstream_port) == {"127.0.0.1"}
    assert listening_addresses(stack.proxy_port) == {"127.0.0.1"}  # KODOMO_UI_LISTEN default


def test_https_with_a_certificate(stack: Stack) -> None:
    """KODOMO_UI_TLS_CERT/KEY: a second proxy on the same webserver, over HTTPS only."""
    tls_dir = Path(tempfile.mkdtemp(prefix="kodomo-ui-tls-"))
    cert, key, port = tls_dir / "cert.pem", tls_dir / "key.pem", free_port()
    proxy_dir = tls_dir / "proxy"
    try:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        os.chmod(tls_dir, 0o755)  # mkdtemp's 0700 would keep the nginx workers out of proxy/
        started = script(
            "start",
            str(proxy_dir),
            str(port),
            str(stack.upstream_port),
            password=PASSWORD,
            KODOMO_UI_TLS_CERT=str(cert),
            KODOMO_UI_TLS_KEY=str(key),
        )
        assert started.returncode == 0, started.stderr
        url = f"https://127.0.0.1:{port}/server_info"
        assert requests.get(url, verify=str(cert), timeout=30).status_code == 401
        assert (
            requests.get(url, auth=(USER, PASSWORD), verify=str(cert), timeout=30).status_code
            == 200
        )
        # plain HTTP on the TLS port is refused, so the password never travels in clear
        assert (
            requests.get(
                f"http://127.0.0.1:{port}/server_info", auth=(USER, PASSWORD), timeout=30
            ).status_code
            == 400
        )
    finally:
        left = stop_proxy(proxy_dir)
        shutil.rmtree(tls_dir, ignore_errors=True)
    assert not left, f"nginx processes left behind: {left}"
