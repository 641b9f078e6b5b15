"""The agent's own resource use from /proc/self and getrusage (no psutil)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import selfstats
from tests import require


def test_rss_is_the_second_statm_field_in_pages() -> None:
    assert selfstats.rss_from_statm("12345 2560 800 1 0 3000 0\n", 4096) == 2560 * 4096
    assert selfstats.rss_from_statm("", 4096) == 0


def test_start_time_survives_a_command_name_with_spaces_and_parentheses() -> None:
    fields = " ".join(str(n) for n in range(3, 53))  # fields 3..52; field 22 is "22"
    assert selfstats.start_ticks_from_stat(f"4242 (enoexec (agent) x) {fields}") == 22


def test_uptime_is_boot_seconds_minus_start() -> None:
    fields = ["S"] + ["0"] * 18 + ["1500"] + ["0"] * 30  # starttime = 1500 ticks = 15 s after boot
    assert selfstats.uptime_from_proc(f"1 (a) {' '.join(fields)}", "75.50 120.00\n", 100) == pytest.approx(60.5)


def test_read_this_process_gives_plausible_figures() -> None:
    me = selfstats.read()
    assert 4 * 2**20 < me.resident_memory_bytes < 4 * 2**30
    assert me.cpu_seconds > 0
    assert 3 <= me.open_fds < 10_000
    assert me.uptime_seconds > 0


def test_read_counts_descriptors_it_opens(tmp_path: Path) -> None:
    before = selfstats.read().open_fds
    files = [open(tmp_path / f"f{i}", "w") for i in range(5)]  # noqa: SIM115 - held open on purpose
    try:
        assert selfstats.read().open_fds == before + 5
    finally:
        for f in files:
            f.close()


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable even for root (the immutable attribute), or skip."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        yield
        path.chmod(0o644)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode != 0:
        require.missing("this file system does not take the immutable attribute (chattr +i, e2fsprogs)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_spool_writable_in_a_writable_directory(tmp_path: Path) -> None:
    db = tmp_path / "spool.db"
    assert selfstats.writable(db)  # not created yet: the directory decides
    db.write_bytes(b"")
    assert selfstats.writable(db)


def test_spool_not_writable_when_its_directory_is_gone(tmp_path: Path) -> None:
    assert not selfstats.writable(tmp_path / "missing" / "spool.db")


@pytest.mark.parametrize("name", ["spool.db", "spool.db-wal"])
def test_spool_not_writable_when_a_file_of_it_is_not(tmp_path: Path, name: str) -> None:
    (tmp_path / "spool.db").write_bytes(b"")
    (tmp_path / name).write_bytes(b"")
    with unwritable(tmp_path / name):
        assert not selfstats.writable(tmp_path / "spool.db")
