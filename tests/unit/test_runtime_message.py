import pytest

from agent.diagnosis import runtime_message as rm


@pytest.mark.parametrize(
    ("line", "runtime", "path"),
    [
        ('standard_init_linux.go:228: exec user process caused: exec format error', "runc-1.0", ""),
        ('standard_init_linux.go:211: exec user process caused "exec format error"', "runc-1.0", ""),
        ("standard_init_linux.go:190: exec user process caused \"exec format error\"", "runc-1.0", ""),
        ("exec /app: exec format error", "runc", "/app"),
        ("exec /usr/local/bin/docker-entrypoint.sh: exec format error", "runc", "/usr/local/bin/docker-entrypoint.sh"),
        ("exec ./run: exec format error", "runc", "./run"),
        ("exec container process `/app`: Exec format error", "crun", "/app"),
        ("exec container process `/usr/bin/server`: Exec format error", "crun", "/usr/bin/server"),
        ("  exec /app: exec format error\r", "runc", "/app"),
    ],
)
def test_every_runtime_wording_is_recognised(line: str, runtime: str, path: str) -> None:
    failure = rm.parse(line)
    assert failure is not None
    assert (failure.runtime, failure.path, failure.message) == (runtime, path, line.strip())  # the line, as evidence


@pytest.mark.parametrize(
    "line",
    [
        "",
        "exec format error",
        "error: exec format error",
        "my program says: exec /app: exec format error",
        "exec /app: exec format error (retrying)",
        "exec /app: no such file or directory",
        "exec /app: permission denied",
        "exec: exec format error",
        "standard_init_linux.go:228: exec user process caused: no such file or directory",
        "exec container process `/app`: No such file or directory",
        "INFO exec format error detected in plugin",
        "Exec format error",
    ],
)
def test_look_alikes_are_not_hits(line: str) -> None:
    assert rm.parse(line) is None


def test_only_the_last_line_counts() -> None:
    log = "starting\nexec /app: exec format error\nretrying with fallback\n"
    assert rm.find(log) is None
    assert rm.find("starting\nexec /app: exec format error\n\n") is not None


def test_log_bytes_are_decoded() -> None:
    failure = rm.find(b"\xff\xfe garbage\nexec /app: exec format error\n")
    assert failure is not None and failure.path == "/app"


@pytest.mark.parametrize(
    ("path", "argv0", "expected"),
    [
        ("/app", "/app", True),
        ("/usr/bin/app", "app", True),
        ("/usr/bin/app", "/app", False),
        ("/usr/bin/other", "app", False),
        ("/usr/bin/myapp", "app", False),
        ("/app", "", False),
        ("/usr/bin/app", "bin/app", False),  # a relative path is not looked up in PATH: another file
        ("/srv/app", "/srv/app/", True),
    ],
)
def test_message_must_name_the_entrypoint(path: str, argv0: str, expected: bool) -> None:
    failure = rm.parse(f"exec {path}: exec format error")
    assert failure is not None
    assert rm.names_entrypoint(failure, argv0) is expected


def test_runc_10_names_no_path_and_matches_any_entrypoint() -> None:
    log = "standard_init_linux.go:228: exec user process caused: exec format error"
    assert rm.find(log, argv0="/anything") is not None


def test_wrong_entrypoint_is_not_a_hit() -> None:
    assert rm.find("exec /bin/helper: exec format error", argv0="/app") is None


def test_tini_names_the_file_and_says_whether_it_was_enoexec() -> None:
    hit = rm.parse("[FATAL tini (7)] exec /app failed: Exec format error")
    assert hit is not None and (hit.runtime, hit.path, hit.enoexec) == ("tini", "/app", True)
    fallback = rm.parse("[FATAL tini (7)] exec /app failed: No such file or directory")
    assert fallback is not None and (fallback.path, fallback.enoexec) == ("/app", False)


def test_output_glued_onto_the_runtime_line_is_found_by_its_end_and_marked() -> None:
    hit = rm.find("hello\nprevious run, no newlineexec /app: exec format error\n", "/app")
    assert hit is not None and (hit.path, hit.glued, hit.message) == ("/app", True, "exec /app: exec format error")
    assert rm.find("exec /app: exec format error\n", "/app").glued is False  # type: ignore[union-attr]


def test_an_empty_log_has_no_last_line() -> None:
    assert rm.last_line("") == rm.last_line(b"\n \n") == ""
    assert rm.find("") is None
