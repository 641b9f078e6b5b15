import pytest

from agent.diagnosis import entrypoint as ep


def test_argv_joins_entrypoint_and_cmd() -> None:
    assert ep.argv(["/docker-entrypoint.sh"], ["nginx", "-g", "daemon off;"]) == (
        "/docker-entrypoint.sh",
        "nginx",
        "-g",
        "daemon off;",
    )
    assert ep.argv(None, ["/bin/sh", "-c", "exec app"]) == ("/bin/sh", "-c", "exec app")
    assert ep.argv(None, None) == ()


def test_path_from_env() -> None:
    assert ep.path_from_env(["A=1", "PATH=/opt/bin:/bin"]) == "/opt/bin:/bin"
    assert ep.path_from_env(["A=1"]) == ep.DEFAULT_PATH
    assert ep.path_from_env(None) == ep.DEFAULT_PATH


@pytest.mark.parametrize(
    ("argv0", "path", "workdir", "expected"),
    [
        ("/app", "/bin", "/", ("/app",)),
        ("./run", "/bin", "/srv", ("/srv/run",)),
        ("bin/run", "/bin", "/srv", ("/srv/bin/run",)),
        ("app", "/usr/local/bin:/usr/bin", "/", ("/usr/local/bin/app", "/usr/bin/app")),
        ("app", "/bin::relative", "/w", ("/bin/app", "/w/app", "/w/relative/app")),
        ("", "/bin", "/", ()),
    ],
)
def test_candidates(argv0: str, path: str, workdir: str, expected: tuple[str, ...]) -> None:
    assert ep.candidates(argv0, path, workdir) == expected


@pytest.mark.parametrize(
    ("link", "target", "expected"),
    [
        ("/bin/sh", "busybox", "/bin/busybox"),
        ("/usr/bin/app", "../lib/app/app", "/usr/lib/app/app"),
        ("/bin/sh", "/usr/bin/dash", "/usr/bin/dash"),
        ("/app", "../../../../etc/passwd", "/etc/passwd"),
        ("/a/b", "./c", "/a/c"),
    ],
)
def test_follow_symlink_targets(link: str, target: str, expected: str) -> None:
    assert ep.follow(link, target) == expected


def test_shebang_interpreter() -> None:
    assert ep.shebang_interpreter("/usr/bin/env python3 -u") == "/usr/bin/env"
    assert ep.shebang_interpreter(" /bin/sh") == "/bin/sh"
    assert ep.shebang_interpreter("") == ""
