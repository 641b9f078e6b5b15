"""The registry lookup memory: answers per reference, unreachable registries per host."""

from __future__ import annotations

import pytest

from agent.engine.lookup_cache import Known, LookupCache, registry_host


@pytest.mark.parametrize(
    ("ref", "host"),
    [
        ("alpine", "docker.io"),
        ("alpine:3.20", "docker.io"),
        ("library/alpine", "docker.io"),
        ("acme/web:1", "docker.io"),
        ("ghcr.io/acme/web:1", "ghcr.io"),
        ("Registry.Example.COM/acme/web", "registry.example.com"),
        ("127.0.0.1:5000/acme/web:1", "127.0.0.1:5000"),
        ("localhost/acme", "localhost"),
        ("localhost:5000/acme@sha256:" + "0" * 64, "localhost:5000"),
        ("acme/web@sha256:" + "0" * 64, "docker.io"),
    ],
)
def test_registry_host_reads_references_like_docker(ref: str, host: str) -> None:
    assert registry_host(ref) == host


def test_unknown_reference_is_to_be_looked_up() -> None:
    assert LookupCache().known("ghcr.io/acme/web:1", now=0.0) is None


def test_an_answer_is_kept_for_its_ttl() -> None:
    cache = LookupCache(answer_ttl=100.0)
    cache.answered("ghcr.io/acme/web:1", ("linux/amd64",), now=10.0)

    assert cache.known("ghcr.io/acme/web:1", now=109.0) == Known(("linux/amd64",))
    assert cache.known("ghcr.io/acme/web:1", now=111.0) is None
    assert cache.known("ghcr.io/acme/other:1", now=20.0) is None  # an answer is about one reference


def test_a_refusal_is_remembered_for_that_reference_only() -> None:
    cache = LookupCache(answer_ttl=100.0)
    cache.answered("ghcr.io/acme/private:1", None, now=0.0)

    assert cache.known("ghcr.io/acme/private:1", now=50.0) == Known(None)
    assert cache.known("ghcr.io/acme/public:1", now=50.0) is None  # the registry itself answers


def test_an_unreachable_registry_is_asked_once_per_retry_interval_for_all_its_images() -> None:
    cache = LookupCache(answer_ttl=3600.0, retry_interval=300.0)
    cache.unreachable("10.0.0.9:5000/acme/web:1", now=0.0)

    for ref in ("10.0.0.9:5000/acme/web:1", "10.0.0.9:5000/acme/api:2", "10.0.0.9:5000/other/x"):
        assert cache.known(ref, now=299.0) == Known(None)
    assert cache.known("ghcr.io/acme/web:1", now=1.0) is None  # another registry is still asked
    assert cache.known("10.0.0.9:5000/acme/api:2", now=301.0) is None  # retried after the interval


def test_an_answer_clears_the_registry_down_mark() -> None:
    cache = LookupCache(retry_interval=300.0)
    cache.unreachable("ghcr.io/acme/web:1", now=0.0)
    cache.answered("ghcr.io/acme/web:1", ("linux/arm64",), now=10.0)

    assert not cache.host_down("ghcr.io/acme/api:1", now=11.0)
    assert cache.known("ghcr.io/acme/api:1", now=11.0) is None


def test_the_cache_is_bounded() -> None:
    cache = LookupCache(max_entries=3)
    for i in range(5):
        cache.answered(f"ghcr.io/acme/app{i}:1", ("linux/amd64",), now=float(i))

    kept = [i for i in range(5) if cache.known(f"ghcr.io/acme/app{i}:1", now=5.0) is not None]
    assert kept == [2, 3, 4]
