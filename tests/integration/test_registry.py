"""fetch_platforms against a real registry (Debian's docker-registry) on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from collector.check.registry import fetch_platforms
from collector.check.registry_policy import parse
from collector.errors import RegistryError
from tests.registry import local_registry, push_image, push_multiplatform_index


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    with local_registry() as address:
        yield address


async def test_oci_index_lists_platforms_and_skips_attestations(registry: str) -> None:
    push_multiplatform_index(
        registry,
        "acme/web",
        "1.0",
        ["linux/amd64", "linux/arm64", "linux/arm/v7"],
        attestation=True,
    )

    found = await fetch_platforms(f"{registry}/acme/web:1.0", allowed=parse(registry))

    assert found == ("linux/amd64", "linux/arm64", "linux/arm/v7")


async def test_docker_manifest_list(registry: str) -> None:
    push_multiplatform_index(registry, "acme/api", "2", ["linux/arm/v6", "linux/386"], docker=True)

    assert await fetch_platforms(f"{registry}/acme/api:2", allowed=parse(registry)) == ("linux/arm/v6", "linux/386")


async def test_index_by_digest(registry: str) -> None:
    digest = push_multiplatform_index(registry, "acme/pinned", "x", ["linux/ppc64le"])

    assert await fetch_platforms(f"{registry}/acme/pinned@{digest}", allowed=parse(registry)) == ("linux/ppc64le",)


async def test_single_oci_manifest_reads_the_config(registry: str) -> None:
    push_image(registry, "acme/one", "arm", "linux/arm64", config={"variant": "v8"})

    assert await fetch_platforms(f"{registry}/acme/one:arm", allowed=parse(registry)) == ("linux/arm64",)


async def test_single_docker_manifest_reads_the_config(registry: str) -> None:
    push_image(registry, "acme/one", "pi", "linux/arm/v6", docker=True)

    assert await fetch_platforms(f"{registry}/acme/one:pi", allowed=parse(registry)) == ("linux/arm/v6",)


async def test_missing_tag_names_the_registry(registry: str) -> None:
    push_image(registry, "acme/two", "present", "linux/amd64")

    with pytest.raises(RegistryError, match=rf"registry {registry} has no manifest .*HTTP 404"):
        await fetch_platforms(f"{registry}/acme/two:absent", allowed=parse(registry))


async def test_missing_repository(registry: str) -> None:
    with pytest.raises(RegistryError, match="HTTP 404"):
        await fetch_platforms(f"{registry}/nobody/nothing:1", allowed=parse(registry))


async def test_unreachable_registry() -> None:
    # A port bound but not listening refuses connections.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(RegistryError, match=rf"could not reach registry 127\.0\.0\.1:{port}"):
            await fetch_platforms(f"127.0.0.1:{port}/acme/web:1", allowed=parse(f"127.0.0.1:{port}"), timeout=5)
