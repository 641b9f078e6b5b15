"""The containerd engine's pure parts: layered root filesystems, descriptions, CRI logs,
exit identity, reconciliation records, engine choice (issue #18)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent import config
from agent.engine import registry
from agent.engine.containerd import describe as d
from agent.engine.containerd import logs, reconcile, watch
from agent.engine.containerd.client import Envelope
from agent.engine.containerd.rootfs import LayeredFiles, layer_dirs, lower_dirs
from agent.errors import ConfigError
from enoexec.third_party.containerd.api.events import task_pb2

# -- root filesystems made of snapshot directories ---------------------------------------


def _layers(tmp_path: Path, *trees: dict[str, bytes | str]) -> list[Path]:
    """Directories top first; a str value is a symlink target."""
    out = []
    for i, tree in enumerate(trees):
        root = tmp_path / f"layer{i}"
        root.mkdir()
        for path, value in tree.items():
            p = root / path.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(value, str):
                p.symlink_to(value)
            else:
                p.write_bytes(value)
                p.chmod(0o755)
        out.append(root)
    return out


def test_a_file_is_read_from_the_topmost_layer_that_has_it(tmp_path: Path) -> None:
    upper, lower = _layers(tmp_path, {"/app": b"new"}, {"/app": b"old", "/bin/tool": b"\x7fELF"})
    files = LayeredFiles([upper, lower])
    assert files.read("/app").data == b"new"
    head = files.read("/bin/tool")
    assert head.data == b"\x7fELF" and head.executable


def test_a_whiteout_hides_the_file_below(tmp_path: Path) -> None:
    upper, lower = _layers(tmp_path, {"/app": b"", "/etc/conf": b"", "/etc/x": b"x"}, {"/app": b"old", "/etc/y": b"y"})
    whiteouts = {upper / "app", upper / "etc" / "y"}  # overlayfs whiteouts: char devices 0:0 (mknod needs root)

    def lstat(p: Path) -> os.stat_result:
        st = os.lstat(p)
        return os.stat_result((0o020000 | 0o600, *tuple(st)[1:]), {"st_rdev": 0}) if p in whiteouts else st

    (upper / "etc" / "y").write_bytes(b"")
    files = LayeredFiles([upper, lower], lstat=lstat)
    assert files.read("/app").missing and files.read("/etc/y").missing
    assert files.read("/etc/x").data == b"x"


def test_symlinks_resolve_inside_the_container_never_on_the_host(tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"host")
    (layer,) = _layers(tmp_path, {
        "/usr/bin/app": b"\x7fELF-real",
        "/bin": "usr/bin",  # merged /usr, relative
        "/escape": "../../../../" + str(secret).lstrip("/"),  # climbs above / inside the container only
        "/loop": "/loop",
    })
    files = LayeredFiles([layer])
    head = files.read("/bin/app")
    assert (head.path, head.data) == ("/bin/app", b"\x7fELF-real")
    assert files.read("/escape").missing  # resolved to /tmp/.../host-secret inside the container: absent
    assert "symbolic links" in files.read("/loop").error


def test_only_the_head_is_read_and_fifos_are_not_opened(tmp_path: Path) -> None:
    (layer,) = _layers(tmp_path, {"/big": b"x" * 100_000})
    os.mkfifo(layer / "fifo")
    files = LayeredFiles([layer], head_bytes=4096)
    assert len(files.read("/big").data) == 4096
    assert "not a regular file" in files.read("/fifo").error


def test_mounts_name_upper_then_lower_directories() -> None:
    mounts = [("overlay", "overlay", ("index=off", "workdir=/s/3/work", "upperdir=/s/3/fs", "lowerdir=/s/2/fs:/s/1/fs"))]
    assert layer_dirs(mounts) == (Path("/s/3/fs"), Path("/s/2/fs"), Path("/s/1/fs"))
    assert lower_dirs(mounts) == (Path("/s/2/fs"), Path("/s/1/fs"))
    assert layer_dirs([("bind", "/s/1/fs", ("ro", "rbind"))]) == (Path("/s/1/fs"),)


# -- descriptions and Kubernetes identity -------------------------------------------------

LABELS = {
    "io.kubernetes.pod.name": "web-7d9f", "io.kubernetes.pod.namespace": "shop",
    "io.kubernetes.pod.uid": "0b8e-11", "io.kubernetes.container.name": "app",
}


def test_kubernetes_identity_from_the_kubelets_labels_and_the_cri_plugins_metadata() -> None:
    meta = d.cri_metadata({d.CRI_METADATA: json.dumps({"Version": "v1", "Metadata": {
        "LogPath": "/var/log/pods/shop_web-7d9f_0b8e-11/app/3.log",
        "Config": {"metadata": {"name": "app", "attempt": 3}}}}).encode()})
    k = d.kube_identity(LABELS, {}, meta)
    assert k == d.KubeIdentity("web-7d9f", "shop", "app", "0b8e-11", 3, "/var/log/pods/shop_web-7d9f_0b8e-11/app/3.log")
    assert d.cri_log_path(k) == Path("/var/log/pods/shop_web-7d9f_0b8e-11/app/3.log")
    # Attempt 0: proto JSON leaves the field out.
    zero = d.kube_identity(LABELS, {}, {"Config": {"metadata": {"name": "app"}}})
    assert zero is not None and zero.restart_count == 0
    assert d.cri_log_path(zero, Path("/logs")) == Path("/logs/shop_web-7d9f_0b8e-11/app/0.log")


def test_identity_without_metadata_takes_the_restart_count_label_or_annotation() -> None:
    labeled = d.kube_identity({**LABELS, d.RESTART_COUNT: "4"})
    annotated = d.kube_identity(LABELS, {d.RESTART_COUNT: "2"})
    assert labeled is not None and labeled.restart_count == 4
    assert annotated is not None and annotated.restart_count == 2
    unknown = d.kube_identity(LABELS)
    assert unknown is not None and unknown.restart_count is None and d.cri_log_path(unknown) is None
    assert d.kube_identity({"io.kubernetes.pod.name": "sandbox-only"}) is None


def test_a_label_cannot_steer_the_log_path_out_of_the_log_root() -> None:
    evil = d.kube_identity({**LABELS, "io.kubernetes.container.name": "..", d.RESTART_COUNT: "0"})
    assert evil is not None and d.cri_log_path(evil) is None
    evil2 = d.kube_identity({**LABELS, "io.kubernetes.pod.name": "a/../../etc", d.RESTART_COUNT: "0"})
    assert evil2 is not None and d.cri_log_path(evil2) is None


def test_the_description_carries_the_specs_argv_env_and_cwd() -> None:
    spec = {"process": {"args": ["/app", "--serve"], "env": ["PATH=/opt/bin", "A=1"], "cwd": "/srv"}}
    when = datetime(2026, 12, 5, 0, 33, 58, 682277, tzinfo=UTC)
    desc = d.describe("c1", image_ref="docker.io/x/y:1", image_id="sha256:abc", spec=spec, labels=LABELS,
                      identity=d.kube_identity(LABELS), status="stopped", exit_code=1, exited_at=when)
    assert desc["Config"]["Entrypoint"] == ["/app", "--serve"] and desc["Config"]["Cmd"] == []
    assert (desc["Config"]["Env"], desc["Config"]["WorkingDir"]) == (["PATH=/opt/bin", "A=1"], "/srv")
    assert desc["State"] == {"Status": "stopped", "Running": False, "ExitCode": 1, "StartedAt": "",
                             "FinishedAt": "2026-12-05T00:33:58.682277Z", "Error": ""}
    assert (desc["Name"], desc["Image"]) == ("shop/web-7d9f/app", "sha256:abc")
    assert d.spec_json("types.containerd.io/opencontainers/runtime-spec/1/Spec", b"{\"process\": {}}") == {"process": {}}
    assert d.spec_json("other", b"{}") == {}


# -- logs ----------------------------------------------------------------------------------


def test_cri_log_records_become_lines_partial_records_joined() -> None:
    data = (b"cut-off tail of an earlier line\n"
            b"2026-12-05T00:33:58.1Z stdout F starting\n"
            b"2026-12-05T00:33:58.2Z stderr P exec /a")
    data += b"pp: exec format \n2026-12-05T00:33:58.3Z stderr F error\n"
    assert logs.cri_text(data) == "starting\nexec /app: exec format error"


def test_only_file_log_uris_are_read() -> None:
    assert logs.file_uri_path("file:///var/log/t1.log") == Path("/var/log/t1.log")
    assert logs.file_uri_path("binary:///usr/bin/logger?x=y") is None
    assert logs.file_uri_path("/run/containerd/fifo/1/t1-stdout") is None


def test_the_tail_of_a_big_log_is_read(tmp_path: Path) -> None:
    p = tmp_path / "0.log"
    p.write_bytes(b"2026-12-05T00:00:00Z stdout F noise\n" * 10_000 + b"2026-12-05T00:00:01Z stderr F exec /app: exec format error\n")
    text = logs.cri_log(p)
    assert text is not None and text.endswith("exec /app: exec format error")
    assert logs.cri_log(tmp_path / "missing.log") is None


# -- exits: identity and reconciliation records ---------------------------------------------


def _task_exit(container_id: str, exec_id: str, status: int) -> Envelope:
    e = task_pb2.TaskExit(container_id=container_id, id=exec_id, pid=42, exit_status=status)
    e.exited_at.FromNanoseconds(1_796_430_838_682_277_666)
    return Envelope("k8s.io", "/tasks/exit", None, e)


def test_an_exit_is_named_by_container_and_exited_at_and_execs_do_not_count() -> None:
    exit = watch.exit_from_envelope(_task_exit("t1", "t1", 1))
    assert exit is not None and exit.key == "t1@2026-12-05T00:33:58.682277+00:00" and exit.exit_code == 1
    assert watch.exit_from_envelope(_task_exit("t1", "exec-1", 126)) is None


def test_filters_select_topics_in_the_watched_namespaces() -> None:
    assert watch.filters(["k8s.io"], ["/tasks/exit"]) == ['topic=="/tasks/exit",namespace=="k8s.io"']


def test_the_cri_status_record_names_the_exit_as_the_task_exit_did() -> None:
    # As containerd 1.6.20's CRI plugin wrote it (tests/integration/test_containerd_cri.py reads real ones).
    raw = (b'{"Version":"v1","Pid":0,"CreatedAt":1796432435692276007,"StartedAt":1796432435752933784,'
           b'"FinishedAt":1796430838682277666,"ExitCode":1,"Reason":"","Message":"","Resources":{"linux":{}}}')
    code, when = reconcile.cri_status(raw) or (0, None)
    assert code == 1 and when == datetime(2026, 12, 5, 0, 33, 58, 682277, tzinfo=UTC)
    record = reconcile.cri_record(raw)
    assert record is not None and record[2] == datetime(2026, 12, 5, 1, 0, 35, 752933, tzinfo=UTC)  # StartedAt
    assert reconcile.cri_status(b'{"Version":"v1","Pid":42,"FinishedAt":0,"ExitCode":0}') is None  # running
    assert reconcile.cri_status(b'{"Version":"v2","FinishedAt":5,"ExitCode":1}') is None
    assert reconcile.cri_status(b"not json") is None


# -- which engine ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runtime", "present", "expected"),
    [
        ("auto", {"/var/run/docker.sock", "/run/containerd/containerd.sock"}, ("docker", "unix:///var/run/docker.sock")),
        ("auto", {"/run/containerd/containerd.sock"}, ("containerd", "/run/containerd/containerd.sock")),
        ("auto", {"/run/k3s/containerd/containerd.sock"}, ("containerd", "/run/k3s/containerd/containerd.sock")),
        ("auto", set(), ("docker", "unix:///var/run/docker.sock")),
        ("containerd", {"/run/k3s/containerd/containerd.sock"}, ("containerd", "/run/k3s/containerd/containerd.sock")),
        ("docker", {"/run/containerd/containerd.sock"}, ("docker", "unix:///var/run/docker.sock")),
    ],
)
def test_auto_finds_the_engine_whose_socket_is_there(runtime: str, present: set[str], expected: tuple[str, str]) -> None:
    assert registry.choose(runtime, "unix:///var/run/docker.sock", "", present.__contains__) == expected


def test_an_explicit_containerd_address_wins_and_moby_is_refused() -> None:
    assert registry.choose("auto", "unix:///var/run/docker.sock", "/x.sock", lambda p: True) == ("containerd", "/x.sock")
    assert config.namespaces("k8s.io, default,k8s.io") == ("k8s.io", "default")
    assert config.namespaces(["k8s.io"]) == ("k8s.io",)
    with pytest.raises(ValueError, match="Docker's own"):
        config.namespaces("k8s.io,moby")
    with pytest.raises(ConfigError):
        registry.choose("podman", "", "")


def test_an_empty_log_is_read_again_for_a_bounded_time() -> None:
    from agent.engine.containerd.containers import LOG_SETTLE, ContainerdContainers

    slept: list[float] = []
    c = ContainerdContainers(None, ["k8s.io"], images=None, sleep=slept.append)
    answers = iter(["", "  \n", "exec /app: exec format error\n"])
    assert c._settled(lambda _: next(answers), Path("/x")) == "exec /app: exec format error\n"
    assert len(slept) == 2
    slept.clear()
    assert c._settled(lambda _: None, Path("/x")) == ""
    assert sum(slept) == pytest.approx(LOG_SETTLE, abs=0.051)


def test_the_generated_containerd_stubs_import_nothing_of_gogo() -> None:
    """containerd's .proto files import gogo/protobuf options; vendor.py strips them, so the
    wheel's generated code needs only protobuf (a fresh interpreter: nothing else loaded)."""
    import subprocess
    import sys

    probe = (
        "import pkgutil, sys, importlib, enoexec.third_party.containerd as t\n"
        "mods = [m.name for m in pkgutil.walk_packages(t.__path__, t.__name__ + '.')]\n"
        "[importlib.import_module(m) for m in mods]\n"
        "print(len(mods), any('gogo' in m or 'fieldpath' in m or m.startswith('github') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60).stdout.split()
    assert int(out[0]) > 30 and out[1] == "False"


@pytest.mark.parametrize(("argv", "says"), [
    (["--containerd-namespaces", "k8s.io,moby"], "'moby' is Docker's own namespace"),
    (["--runtime", "podman"], "use docker, containerd or auto"),
])
def test_engine_mistakes_are_one_line_usage_errors(argv: list[str], says: str) -> None:
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "agent.cli", "run", "--insecure", *argv], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and says in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_a_cri_containers_log_is_read_once_the_cri_plugin_recorded_its_exit(tmp_path: Path) -> None:
    from agent.engine.containerd.containers import ContainerdContainers

    status = tmp_path / "cri" / "containers" / "c1" / "status"
    status.parent.mkdir(parents=True)
    status.write_text('{"Version":"v1","Pid":42,"FinishedAt":0,"ExitCode":0}')  # running
    polls: list[float] = []

    def sleep(s: float) -> None:
        polls.append(s)
        if len(polls) == 3:  # the CRI plugin finishes its exit handling
            status.write_text('{"Version":"v1","Pid":0,"FinishedAt":1796430838682277666,"ExitCode":1}')

    c = ContainerdContainers(None, ["k8s.io"], images=None, cri_root=tmp_path / "cri", sleep=sleep)
    c._await_cri_exit("c1")
    assert len(polls) == 3
    polls.clear()
    c._await_cri_exit("not-a-cri-container")  # no record here: no wait
    assert polls == []
