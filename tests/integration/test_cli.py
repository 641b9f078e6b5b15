"""Issue 13: every mistake gets one clear line and its exit code, from the real commands.

Each test runs ``enoexec-agent`` / ``enoexec-collector`` as a process and asserts
the exit code and the one line on stderr (README.md, "Exit codes")."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from enoexec import __version__
from tests import procs, require
from tests.images import File

MAKE_CERTS = Path(__file__).resolve().parents[2] / "deploy" / "tls" / "make-certs.sh"
C_CORE_LINE = re.compile(r"^[EWID]\d{4} \d\d:\d\d:\d\d")  # gRPC C-core's own log format


def agent(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def collector_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def only_line(out: subprocess.CompletedProcess[str]) -> str:
    """stderr is exactly one line: the error."""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


def last_line(out: subprocess.CompletedProcess[str]) -> str:
    """The last stderr line (a daemon logs before it fails); never a traceback or C-core line."""
    lines = out.stderr.strip().splitlines()
    assert lines and "Traceback" not in out.stderr, out.stderr
    assert not [x for x in lines if C_CORE_LINE.match(x)], out.stderr
    return lines[-1]


# --- agent run: permanent mistakes stop at once ------------------------------------

@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--docker-host", "foo://bar"], "--docker-host 'foo://bar': use unix:///var/run/docker.sock"),
        (["--docker-host", "/var/run/docker.sock"], "has no scheme: pass unix:///var/run/docker.sock"),
        (["--host-id", "bad id!"], "--host-id 'bad id!': use 1 to 128 characters"),
        (["--state-dir", "/etc/hostname"], "--state-dir /etc/hostname is not a directory"),
    ],
    ids=["bad-scheme", "no-scheme", "bad-host-id", "state-dir-is-a-file"],
)
def test_agent_run_refuses_bad_flags_with_one_line(flags: list[str], says: str) -> None:
    out = agent("run", "--insecure", *flags, timeout=30)
    assert out.returncode == 2, out.stderr
    line = only_line(out)
    assert line.startswith("enoexec-agent: error: ") and says in line, line


def test_a_fractional_batch_size_in_toml_is_an_error(tmp_path: Path) -> None:
    conf = tmp_path / "agent.toml"
    conf.write_text("batch_size = 1.5\n")
    for out in (agent("run", "--insecure", "--config", str(conf)), agent("run", "--insecure", env={"ENOEXEC_CONFIG": str(conf)})):
        assert out.returncode == 2, out.stderr
        assert only_line(out) == f"enoexec-agent: error: {conf} key 'batch_size': expected a whole number, got 1.5"


def test_both_commands_print_their_version() -> None:
    assert agent("--version").stdout.strip() == f"enoexec-agent {__version__}"
    assert collector_cli("--version").stdout.strip() == f"enoexec-collector {__version__}"


def test_run_accepts_no_registry_like_diagnose() -> None:
    """One spelling for both: --no-registry (the old --no-lookup-registry still parses)."""
    for flag in ("--no-registry", "--no-lookup-registry"):
        out = agent("run", "--insecure", flag, "--host-id", "bad id!")
        assert out.returncode == 2 and "--host-id" in only_line(out), out.stderr  # parsed; failed later, on purpose
    assert "--no-registry" in agent("run", "--help").stdout


def _socket_no_one_may_open() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="enoexec-sock-")
    os.chmod(d, 0o755)
    path = os.path.join(d, "docker.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen()
    os.chmod(path, 0)
    try:
        yield path
    finally:
        s.close()
        os.unlink(path)
        os.rmdir(d)


def test_a_socket_we_may_not_open_says_permission_denied() -> None:
    """A mode-000 socket: permission denied, not "is dockerd running?". Root keeps its uid but
    loses the capabilities that bypass file modes (setpriv, util-linux)."""
    if os.geteuid() != 0:
        drop: list[str] = []
    elif shutil.which("setpriv"):
        drop = ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search", "--"]
    else:
        require.missing("running as root without setpriv (apt-get install util-linux): root would open any socket")
    for path in _socket_no_one_may_open():
        out = subprocess.run([*drop, sys.executable, "-m", "agent.cli", "diagnose", "x", "--docker-host", f"unix://{path}"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, out.stderr
        said = (f"enoexec-agent: error: permission denied on the Docker Engine socket unix://{path}: "
                "run as root or as a member of the docker group")
        assert only_line(out) == said
        state = tempfile.mkdtemp(prefix="enoexec-state-")
        try:  # the daemon stops too, instead of waiting for a Docker that will never let it in
            out = subprocess.run([*drop, sys.executable, "-m", "agent.cli", "run", "--insecure", "--state-dir", state,
                                  "--docker-host", f"unix://{path}"], capture_output=True, text=True, timeout=60)
        finally:
            shutil.rmtree(state)
        assert out.returncode == 2 and last_line(out) == said, out.stderr


# --- diagnose: one exit code per outcome ----------------------------------------------

def test_diagnose_outcomes_have_their_own_exit_codes(engine: Any, dock: Any) -> None:
    url = engine.url
    out = agent("diagnose", "no-such-container-xyz", "--docker-host", url, "--no-registry")
    assert out.returncode == 4, out.stderr
    assert only_line(out) == f"enoexec-agent: error: no such container: no-such-container-xyz (on the Docker Engine at {url})"
    out = agent("diagnose", "no-such-container-xyz", "--docker-host", url, "--json")
    assert out.returncode == 4 and json.loads(out.stdout)["exit_code"] == 4, out.stdout

    gone = "unix:///nonexistent/docker.sock"
    out = agent("diagnose", "x", "--docker-host", gone)
    assert out.returncode == 3, out.stderr
    assert only_line(out).startswith(f"enoexec-agent: error: no Docker Engine socket at {gone}"), out.stderr
    out = agent("diagnose", "x", "--docker-host", gone, "--json")
    assert out.returncode == 3 and json.loads(out.stdout)["kind"] == "DockerUnavailable"

    # A start the engine refuses (no such entrypoint): not an exec format error.
    tag = dock.load("cli-missing", [File("/etc/placeholder", b"x\n", mode=0o644)], architecture="amd64", entrypoint=["/nope"])
    try:
        cid = dock.run(tag)
    except Exception:  # noqa: BLE001 - docker refuses the start; the container stays
        cid = dock.containers[-1]
    out = agent("diagnose", cid, "--docker-host", url, "--no-registry")
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "not an exec format error" in out.stdout
    out = agent("diagnose", cid, "--docker-host", url, "--no-registry", "--json")
    assert out.returncode == 1 and json.loads(out.stdout)["exec_format_error"] is False


def test_diagnose_escapes_control_characters_from_the_image(engine: Any, dock: Any) -> None:
    """An entrypoint named with ESC and BEL bytes is shown as \\x1b and \\x07, never raw."""
    evil = "/app\x1b]0;pwned\x07\x1b[2J"
    tag = dock.load("cli-evil", [File(evil, b"echo hello\n")], architecture="amd64", entrypoint=[evil])
    try:
        cid = dock.run(tag)
    except Exception:  # noqa: BLE001
        cid = dock.containers[-1]
    out = agent("diagnose", cid, "--docker-host", engine.url, "--no-registry")
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    assert "/app\\x1b]0;pwned\\x07\\x1b[2J" in out.stdout
    doc = json.loads(agent("diagnose", cid, "--docker-host", engine.url, "--no-registry", "--json").stdout)
    assert (doc["binary"]["requested_path"], doc["binary"]["path"]) == (evil, evil)  # JSON keeps the real bytes


def test_facts_says_whether_binfmt_misc_is_mounted(engine: Any) -> None:
    out = agent("facts", "--docker-host", engine.url)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("binfmt_misc"))
    mounted = Path("/proc/sys/fs/binfmt_misc/status").exists()
    assert ("not mounted" in line) == (not mounted), line
    doc = json.loads(agent("facts", "--docker-host", engine.url, "--json").stdout)
    assert isinstance(doc["memory_bytes"], int) and doc["memory_bytes"] > 0


# --- agent run against the wrong collector ---------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    for args in (("ca", d), ("collector", d, "localhost", "127.0.0.1"), ("agent", d, "host-a")):
        subprocess.run(["bash", str(MAKE_CERTS), *map(str, args)], check=True, capture_output=True)
    return d


@pytest.fixture
def tls_collector(tmp_path: Path, pki: Path) -> Iterator[Callable[..., procs.Proc]]:
    started: list[procs.Proc] = []

    def start(*flags: str, mtls: bool = True) -> procs.Proc:
        g, h = procs.free_port(), procs.free_port()
        ca = ["--tls-ca", str(pki / "ca.crt")] if mtls else []
        argv = [sys.executable, "-m", "collector.cli", "serve", "--db", str(tmp_path / f"c{g}.db"),
                "--grpc-listen", f"127.0.0.1:{g}", "--http-listen", f"127.0.0.1:{h}",
                *ca, "--tls-cert", str(pki / "collector-localhost.crt"), "--tls-key", str(pki / "collector-localhost.key"), *flags]
        p = procs.Proc(argv, tmp_path / f"collector-{g}.log").start()
        p.grpc, p.http = g, h  # type: ignore[attr-defined]
        started.append(p)
        procs.wait_for(lambda: procs.answering(f"http://127.0.0.1:{h}/healthz") or not p.alive(), timeout=30, what="collector up")
        assert p.alive(), p.output()
        return p

    yield start
    for p in started:
        p.stop()


def test_agent_stops_when_the_collector_refuses_its_identity(engine: Any, pki: Path, tls_collector: Callable[..., procs.Proc], tmp_path: Path) -> None:
    """A certificate for host-a presented as host-b: PERMISSION_DENIED is permanent, exit 2, not a retry loop."""
    col = tls_collector()
    out = agent("run", "--collector", f"127.0.0.1:{col.grpc}", "--docker-host", engine.url, "--state-dir", str(tmp_path / "s"),
                "--host-id", "host-b", "--tls-ca", str(pki / "ca.crt"), "--tls-cert", str(pki / "agent-host-a.crt"),
                "--tls-key", str(pki / "agent-host-a.key"), "--no-registry", "--log-format", "json", timeout=90)
    assert out.returncode == 2, out.stderr[-2000:]
    line = last_line(out)
    assert line.startswith("enoexec-agent: error: the collector at ") and "refused this agent's identity" in line, line


def test_agent_stops_when_the_collector_does_not_know_its_token(engine: Any, pki: Path, tls_collector: Callable[..., procs.Proc], tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("host-a " + "0" * 64 + "\n")
    col = tls_collector("--tokens-file", str(tokens), mtls=False)
    token = tmp_path / "agent.token"
    token.write_text("not-the-token\n")
    token.chmod(0o600)
    out = agent("run", "--collector", f"127.0.0.1:{col.grpc}", "--docker-host", engine.url, "--state-dir", str(tmp_path / "s"),
                "--host-id", "host-a", "--tls-ca", str(pki / "ca.crt"), "--token-file", str(token), "--no-registry", timeout=90)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "does not know this agent" in last_line(out)
    assert "not-the-token" not in out.stderr


def _agent_log_until(argv_tail: list[str], engine: Any, tmp_path: Path, want: str) -> str:
    argv = [sys.executable, "-m", "agent.cli", "run", "--docker-host", engine.url, "--state-dir", str(tmp_path / "s"),
            "--host-id", "cli-test", "--no-registry", "--log-format", "json", *argv_tail]
    p = procs.Proc(argv, tmp_path / "agent.log").start()
    try:
        procs.wait_for(lambda: want in p.output() or not p.alive(), timeout=60, what=want)
    finally:
        p.stop()
    return p.output()


def test_insecure_agent_against_a_tls_collector_is_told_so(engine: Any, tls_collector: Callable[..., procs.Proc], tmp_path: Path) -> None:
    col = tls_collector()
    log = _agent_log_until(["--insecure", "--collector", f"127.0.0.1:{col.grpc}"], engine, tmp_path, "it probably speaks TLS")
    assert "drop --insecure" in log
    lines = log.strip().splitlines()
    assert all(json.loads(x) for x in lines), "every log line is one JSON object (no gRPC C-core lines)"


def test_agent_pointed_at_the_http_port_is_told_so(engine: Any, tls_collector: Callable[..., procs.Proc], tmp_path: Path) -> None:
    col = tls_collector()
    log = _agent_log_until(["--insecure", "--collector", f"127.0.0.1:{col.http}"], engine, tmp_path, "does not speak gRPC")
    assert "the collector's HTTP port" in log
    said = [json.loads(x) for x in log.strip().splitlines() if "does not speak gRPC" in x]
    assert len(said) == 1, "a retried failure is said once, then summarised"
    assert said[0]["msg"].startswith("collector unreachable: ") and said[0]["target"] == f"127.0.0.1:{col.http}"


# --- collector ------------------------------------------------------------------------

def test_serve_refuses_a_db_in_a_missing_directory(tmp_path: Path) -> None:
    db = tmp_path / "nonexistent" / "dir" / "x.db"
    out = collector_cli("serve", "--insecure", "--db", str(db), "--grpc-listen", f"127.0.0.1:{procs.free_port()}",
                    "--http-listen", f"127.0.0.1:{procs.free_port()}")
    assert out.returncode == 2, out.stderr
    assert "directory" in only_line(out) and "does not exist" in only_line(out)
    assert not db.parent.exists()


@pytest.mark.parametrize("flag", ["--http-token-file", "--tokens-file"])
def test_serve_refuses_a_token_file_without_a_token(tmp_path: Path, flag: str) -> None:
    """An empty token file started, bound 0.0.0.0:9469 and answered 401 to everything."""
    empty = tmp_path / "tokens"
    empty.write_text("# no tokens yet\n\n")
    http_port = procs.free_port()
    tls = ["--insecure"] if flag == "--http-token-file" else []
    out = collector_cli("serve", *tls, "--db", str(tmp_path / "c.db"), flag, str(empty),
                        "--grpc-listen", f"127.0.0.1:{procs.free_port()}", "--http-listen", f"127.0.0.1:{http_port}",
                        timeout=30)
    assert out.returncode == 2, out.stderr
    assert only_line(out) == (f"enoexec-collector: error: {flag} {empty} holds no token, so every request would be "
                              "refused; add a line made by 'enoexec-collector token NAME'")
    assert not (tmp_path / "c.db").exists()


def test_serve_on_an_address_of_another_host_prints_only_our_line(tmp_path: Path) -> None:
    out = collector_cli("serve", "--insecure", "--db", str(tmp_path / "c.db"), "--grpc-listen", "10.255.255.1:17469",
                    "--http-listen", f"127.0.0.1:{procs.free_port()}", "--log-format", "json")
    assert out.returncode == 2, out.stderr
    assert last_line(out).startswith("enoexec-collector: error: --grpc-listen 10.255.255.1:17469")
    for x in out.stderr.strip().splitlines()[:-1]:
        json.loads(x)  # only our own log lines before it


def test_client_commands_exit_codes(collector: Callable[..., procs.Proc]) -> None:
    col = collector()
    # A URL without scheme is taken as http://.
    out = collector_cli("hints", "--url", f"localhost:{col.http}")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "no exec format errors recorded: nothing to fix\n"
    out = collector_cli("hints", "--url", "ftp://x")
    assert out.returncode == 2 and "pass the collector's HTTP address, e.g. http://localhost:9469" in only_line(out)

    # No hosts known: exit 4, never "every host can run it".
    out = collector_cli("check", "registry.example/app:1", "--platform", "linux/amd64", "--url", f"127.0.0.1:{col.http}")
    assert out.returncode == 4, (out.stdout, out.stderr)
    assert "no hosts known to the collector yet" in out.stdout
    out = collector_cli("check", "registry.example/app:1", "--platform", "linux/amd64", "--url", f"127.0.0.1:{col.http}", "--json")
    assert out.returncode == 4 and json.loads(out.stdout)["exit_code"] == 4

    # A request the collector refuses (HTTP 400): exit 2, one line with its reason.
    out = collector_cli("check", "NOT A REF", "--url", f"127.0.0.1:{col.http}")
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert only_line(out).startswith(f"enoexec-collector: error: http://127.0.0.1:{col.http}/api/v1/check: HTTP 400: ")
    # An unknown platform is refused before any collector is asked (none answers here).
    out = collector_cli("check", "registry.example/app:1", "--platform", "banana", "--url", f"127.0.0.1:{procs.free_port()}")
    assert out.returncode == 2 and only_line(out).startswith("enoexec-collector: error: --platform 'banana': "), out
    # A --url that names no collector API (404) is a usage error, not "not found".
    out = collector_cli("forget", "some-host", "--url", f"127.0.0.1:{col.http}/x")
    assert out.returncode == 2 and "HTTP 404" in only_line(out), out

    # Collector unreachable: exit 3, and --json still prints JSON.
    dead = f"127.0.0.1:{procs.free_port()}"
    out = collector_cli("check", "x", "--platform", "linux/amd64", "--url", dead)
    assert out.returncode == 3 and only_line(out).startswith(f"enoexec-collector: error: cannot reach the collector at http://{dead}")
    out = collector_cli("check", "x", "--platform", "linux/amd64", "--url", dead, "--json")
    assert out.returncode == 3 and json.loads(out.stdout)["kind"] == "CollectorUnavailable"



# --- quick start ---------------------------------------------------------------------

def test_second_quickstart_refuses_ports_another_process_holds(engine: Any, tmp_path: Path) -> None:
    """Another clone's collector on the ports: refuse with one line, never report it as ours."""
    if subprocess.run(["python3", "-c", "import ensurepip, venv"], capture_output=True).returncode != 0:
        require.missing("python3-venv missing (apt-get install python3-venv): the quick start would install it")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(Path(__file__).resolve().parents[2]), str(clone)], check=True)
    stamp = clone / ".enoexec" / "venv" / ".installed"  # enoexec counts as installed: no pip run here
    stamp.parent.mkdir(parents=True)
    stamp.touch()
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = {**os.environ, "DOCKER_HOST": engine.url, "ENOEXEC_GRPC_PORT": str(port), "ENOEXEC_HTTP_PORT": str(procs.free_port())}
        out = subprocess.run(["bash", "deploy/quickstart.sh"], cwd=clone, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert only_line(out).startswith(f"quickstart: port {port} on 127.0.0.1 is taken by another process")
    assert "running" not in out.stdout
    help_text = subprocess.run(["bash", "deploy/quickstart.sh", "--help"], cwd=clone, capture_output=True, text=True).stdout
    assert help_text.startswith("enoexec quick start") and "set -euo" not in help_text and "--stop" in help_text


def test_usage_errors_are_one_line_and_json_when_asked() -> None:
    out = agent("diagnose")
    assert out.returncode == 2
    assert only_line(out) == "enoexec-agent: error: the following arguments are required: CONTAINER (see enoexec-agent diagnose --help)"
    out = collector_cli("check", "--json")
    assert out.returncode == 2 and json.loads(out.stdout)["exit_code"] == 2 and only_line(out).startswith("enoexec-collector: error: ")


def test_facts_without_docker_still_shows_the_host() -> None:
    out = agent("facts", "--docker-host", "unix:///nonexistent/docker.sock")
    assert out.returncode == 0, out.stderr
    assert "without the Docker Engine's view: no Docker Engine socket at unix:///nonexistent/docker.sock" in only_line(out)
    assert out.stdout.startswith("host id ") and "docker       ? (?)" in out.stdout
