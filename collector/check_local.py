"""``check`` without asking the collector to read: a local archive, or a CI gate's target platforms.

The image is read in this process (a ``docker save``/OCI archive file, or the
registry the reference names) and judged against ``--target`` platforms, the
hosts of a ``--facts`` file, or — for an archive with neither — the hosts and
exits the collector at ``--url`` knows.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from collector.check import imagecheck, registry_policy
from collector.check.archive import read_archive
from collector.check.registry import parse_reference
from collector.errors import ConfigError, InvalidReference, RegistryError, RegistryRefused, RegistryUnavailable
from collector.http import check_view
from enoexec import platforms
from enoexec.facts import HostFacts

MAX_FACTS_BYTES = 16 * 1024 * 1024  # a fleet's facts are a few KiB per host; /dev/zero is not
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".oci")  # a missing file, not a registry repository named "x.tar"
Fetch = Callable[[str, list[tuple[str, str]]], dict[str, Any]]  # (path, params) -> JSON from the collector


def facts_file(path: str) -> list[HostFacts]:
    """Hosts from ``enoexec-agent facts --json`` output (one host, or a list of them) or a
    saved ``/api/v1/hosts`` page."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FACTS_BYTES + 1)
        if len(raw) > MAX_FACTS_BYTES:
            raise ValueError(f"larger than {MAX_FACTS_BYTES} bytes: not host facts")
        doc = json.loads(raw)
    except (OSError, ValueError) as e:
        raise ConfigError(f"--facts {path}: {getattr(e, 'strerror', None) or e}") from None
    items = doc.get("hosts") if isinstance(doc, dict) and "hosts" in doc else doc
    items = items if isinstance(items, list) else [items]
    out = []
    for item in items:
        facts = item.get("facts") if isinstance(item, dict) and isinstance(item.get("facts"), dict) else item
        if not isinstance(facts, dict):
            raise ConfigError(f"--facts {path}: expected host facts objects (enoexec-agent facts --json)")
        platform = platforms.parse(str(facts.get("platform") or item.get("platform") or ""))
        if not platforms.is_known(platform):
            raise ConfigError(f"--facts {path}: a host without a known platform ({facts.get('platform')!r})")
        host_id = str(facts.get("host_id") or item.get("host_id") or platform)
        out.append(imagecheck.host_facts(host_id, platform, facts))
    if not out:  # not "ask the collector instead": a gate given no hosts must not judge against others
        raise ConfigError(f"--facts {path}: names no hosts (enoexec-agent facts --json of each host, in a list)")
    return out


def targets(values: Sequence[str]) -> list[HostFacts]:
    out = []
    for value in values:
        p = platforms.parse(value)
        if not platforms.is_known(p):
            raise ConfigError(f"--target {value!r}: expected os/arch[/variant] with a known architecture, such as linux/arm64")
        out.append(imagecheck.target_host(p))
    return out


def read(image: str, *, check_registries: str | None, max_bytes: int, timeout: float) -> imagecheck.ImageRead:
    path = Path(image)
    if path.is_file():
        return asyncio.run(read_archive(path, max_bytes=max_bytes, timeout=timeout))
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{image} is not a regular file: give an archive file (docker save -o FILE IMAGE)")
    if path.is_dir():
        raise ConfigError(f"{image} is a directory: give an archive file (docker save -o FILE IMAGE), or an image reference")
    if image.startswith(("/", "./", "../")):
        raise ConfigError(f"{image}: no such archive file")
    if image.endswith(ARCHIVE_SUFFIXES):
        raise ConfigError(f"{image}: no such archive file (for a registry image of that name, give its tag: {image}:latest)")
    try:
        ref = parse_reference(image)
    except InvalidReference as e:
        raise ConfigError(f"{e} (and no such file)") from None
    try:
        policy = registry_policy.parse(check_registries if check_registries is not None else f"default,{ref.registry}")
    except ValueError as e:
        raise ConfigError(f"--check-registries: {e}") from None
    try:
        return asyncio.run(imagecheck.read_registry(image, allowed=policy, max_bytes=max_bytes, timeout=timeout))
    except RegistryRefused as e:
        raise ConfigError(str(e)) from None
    except RegistryError as e:
        raise RegistryUnavailable(str(e)) from None


def run(image: str, *, hosts: list[HostFacts] | None, fetch: Fetch | None, check_registries: str | None,
        max_bytes: int, timeout: float) -> dict[str, Any]:
    """The answer document, like ``/api/v1/check``'s."""
    read_image = read(image, check_registries=check_registries, max_bytes=max_bytes, timeout=timeout)
    seen: list[imagecheck.Seen] = []
    if hosts is None:
        assert fetch is not None
        page = fetch("/api/v1/hosts", [("limit", "10000")])
        hosts = [imagecheck.host_facts(h["host_id"], h["platform"], h.get("facts") or {}) for h in page.get("hosts", [])]
        tags = _tags(read_image)
        for tag in tags:
            seen += imagecheck.seen_from_events(fetch("/api/v1/events", [("image", tag), ("limit", "1000")]).get("events", []))
    answers = imagecheck.answer(read_image, hosts, seen)
    return check_view.answer_json(image, answers, platforms=[p.platform for p in read_image.platforms],
                                  source=read_image.source, read=read_image, seen=seen)


def _tags(read_image: imagecheck.ImageRead) -> list[str]:
    """The names an archive's image was saved under (its exits are recorded by name)."""
    names = [read_image.ref] if read_image.source != "archive" else list(read_image.names)
    return list(dict.fromkeys(n for name in names for n in imagecheck.names_of(name)))
