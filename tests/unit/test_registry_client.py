"""parse_reference, and the anonymous Bearer-token flow against a tiny aiohttp server."""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from collector.check import imagecheck
from collector.check.registry import ImageRef, fetch_platforms, parse_reference
from collector.check.registry_policy import parse
from collector.errors import RegistryError, RegistryRefused

DIGEST = "sha256:" + "ab" * 32
ISSUED = web.AppKey("issued", list)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alpine", ImageRef("registry-1.docker.io", "library/alpine", "latest", "")),
        ("alpine:3.20", ImageRef("registry-1.docker.io", "library/alpine", "3.20", "")),
        ("grafana/grafana", ImageRef("registry-1.docker.io", "grafana/grafana", "latest", "")),
        ("docker.io/nginx:1", ImageRef("registry-1.docker.io", "library/nginx", "1", "")),
        ("index.docker.io/a/b:c", ImageRef("registry-1.docker.io", "a/b", "c", "")),
        ("localhost:5000/foo:1", ImageRef("localhost:5000", "foo", "1", "")),
        ("localhost/foo", ImageRef("localhost", "foo", "latest", "")),
        ("ghcr.io/acme/team/app:v1.2-rc", ImageRef("ghcr.io", "acme/team/app", "v1.2-rc", "")),
        (f"quay.io/ns/repo@{DIGEST}", ImageRef("quay.io", "ns/repo", "", DIGEST)),
        (f"host:443/ns/repo:t@{DIGEST}", ImageRef("host:443", "ns/repo", "t", DIGEST)),
        ("Registry/foo", ImageRef("Registry", "foo", "latest", "")),
    ],
)
def test_parse_reference(text: str, expected: ImageRef) -> None:
    assert parse_reference(text) == expected


def test_str_is_the_canonical_reference() -> None:
    assert str(parse_reference("alpine")) == "registry-1.docker.io/library/alpine:latest"
    assert str(parse_reference(f"reg.example/ns/repo@{DIGEST}")) == f"reg.example/ns/repo@{DIGEST}"
    assert parse_reference(f"reg.example/ns/repo:t@{DIGEST}").reference == DIGEST


def test_a_first_component_without_dot_or_port_is_a_docker_hub_namespace() -> None:
    # As in docker: "host" is not a registry host unless it has a dot, a port or is localhost.
    assert parse_reference(f"host/ns/repo@{DIGEST}") == ImageRef(
        "registry-1.docker.io", "host/ns/repo", "", DIGEST
    )


@pytest.mark.parametrize(
    "text",
    ["", "UPPER", "ex.io/Ns/repo", "foo:", "foo@sha256:xyz", "foo:bad tag", "a//b", "-lead/x", "foo@", "ns/Repo"],
)
def test_parse_reference_rejects_garbage(text: str) -> None:
    with pytest.raises(RegistryError, match="invalid image reference"):
        parse_reference(text)


_INDEX = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        {"digest": "sha256:" + "1" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
        {
            "digest": "sha256:" + "2" * 64,
            "platform": {"os": "linux", "architecture": "arm", "variant": "v7"},
        },
        {"digest": "sha256:" + "3" * 64, "platform": {"os": "unknown", "architecture": "unknown"}},
    ],
}
_MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {"digest": "sha256:" + "c" * 64, "size": 2},
    "layers": [],
}


def _token_app(*, token_status: int = 200) -> web.Application:
    """A registry that demands a Bearer token for repository secret/app."""

    async def token(request: web.Request) -> web.Response:
        request.app[ISSUED].append(dict(request.query))
        if token_status != 200:
            return web.json_response({"errors": []}, status=token_status)
        return web.json_response({"token": "t0ken"})

    def authorized(request: web.Request) -> bool:
        return request.headers.get("Authorization") == "Bearer t0ken"

    async def manifest(request: web.Request) -> web.Response:
        if not authorized(request):
            realm = f"http://{request.host}/token"
            challenge = f'Bearer realm="{realm}",service="test-registry",scope="repository:secret/app:pull"'
            return web.json_response({"errors": []}, status=401, headers={"WWW-Authenticate": challenge})
        body = _INDEX if request.match_info["ref"] == "multi" else _MANIFEST
        return web.Response(body=json.dumps(body).encode(), content_type=body["mediaType"])

    async def blob(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response({"errors": []}, status=401)
        return web.json_response({"os": "linux", "architecture": "aarch64", "variant": "v8"})

    app = web.Application()
    app[ISSUED] = []
    app.router.add_get("/token", token)
    app.router.add_get("/v2/secret/app/manifests/{ref}", manifest)
    app.router.add_get("/v2/secret/app/blobs/{digest}", blob)
    return app


async def test_bearer_token_then_index() -> None:
    app = _token_app()
    async with TestServer(app, host="127.0.0.1", port=0) as server:
        found = await fetch_platforms(f"127.0.0.1:{server.port}/secret/app:multi", allowed=parse(f"127.0.0.1:{server.port}"))

    assert found == ("linux/amd64", "linux/arm/v7")
    assert app[ISSUED] == [{"scope": "repository:secret/app:pull", "service": "test-registry"}]


async def test_bearer_token_reused_for_the_config_blob() -> None:
    app = _token_app()
    async with TestServer(app, host="127.0.0.1", port=0) as server:
        found = await fetch_platforms(f"127.0.0.1:{server.port}/secret/app:single", allowed=parse(f"127.0.0.1:{server.port}"))

    assert found == ("linux/arm64",)
    assert len(app[ISSUED]) == 1


async def test_token_refused_is_a_registry_error() -> None:
    async with TestServer(_token_app(token_status=403), host="127.0.0.1", port=0) as server:
        with pytest.raises(RegistryError, match="answered HTTP 403 for anonymous pull of secret/app"):
            await fetch_platforms(f"127.0.0.1:{server.port}/secret/app:multi", allowed=parse(f"127.0.0.1:{server.port}"))


async def test_bad_json_is_a_registry_error() -> None:
    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text="<html>proxy error</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/v2/a/b/manifests/c", garbage)
    async with TestServer(app, host="127.0.0.1", port=0) as server:
        with pytest.raises(RegistryError, match=rf"registry 127.0.0.1:{server.port} sent invalid JSON"):
            await fetch_platforms(f"127.0.0.1:{server.port}/a/b:c", allowed=parse(f"127.0.0.1:{server.port}"))


# -- what the look-up may contact ----------------------------------------------


def _realm_app(realm: str) -> web.Application:
    """A registry whose Bearer challenge names ``realm``."""

    async def manifest(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer t0ken":
            challenge = f'Bearer realm="{realm}",service="elsewhere"'
            return web.json_response({"errors": []}, status=401, headers={"WWW-Authenticate": challenge})
        return web.Response(body=json.dumps(_INDEX).encode(), content_type=_INDEX["mediaType"])

    app = web.Application()
    app.router.add_get("/v2/secret/app/manifests/{ref}", manifest)
    return app


async def test_a_realm_on_another_host_is_fetched_only_when_allowed() -> None:
    issuer = _token_app()  # its /token answers "t0ken"
    async with TestServer(issuer, host="127.0.0.1", port=0) as realm_server:
        realm = f"http://127.0.0.1:{realm_server.port}/token"
        async with TestServer(_realm_app(realm), host="127.0.0.1", port=0) as server:
            ref = f"127.0.0.1:{server.port}/secret/app:multi"
            with pytest.raises(RegistryRefused, match=rf"token realm .*127\.0\.0\.1:{realm_server.port}.* does not allow"):
                await fetch_platforms(ref, allowed=parse(f"127.0.0.1:{server.port}"))
            assert issuer[ISSUED] == []

            both = parse(f"127.0.0.1:{server.port},127.0.0.1:{realm_server.port}")
            assert await fetch_platforms(ref, allowed=both) == ("linux/amd64", "linux/arm/v7")
            assert len(issuer[ISSUED]) == 1


async def test_a_registry_not_on_the_list_is_never_contacted() -> None:
    app = _token_app()
    async with TestServer(app, host="127.0.0.1", port=0) as server:
        with pytest.raises(RegistryRefused, match=rf"registry 127\.0\.0\.1:{server.port} is on .* --check-registries"):
            await fetch_platforms(f"127.0.0.1:{server.port}/secret/app:multi", allowed=parse("default"))
        with pytest.raises(RegistryRefused, match="disabled"):
            await fetch_platforms(f"127.0.0.1:{server.port}/secret/app:multi", allowed=parse(""))
    assert app[ISSUED] == []


async def test_redirects_are_checked_and_carry_no_token_to_another_host() -> None:
    seen: list[str | None] = []

    async def blob(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"os": "linux", "architecture": "arm64"})

    cdn = web.Application()
    cdn.router.add_get("/blob", blob)
    async with TestServer(cdn, host="127.0.0.1", port=0) as cdn_server:
        target = f"http://127.0.0.1:{cdn_server.port}/blob"

        async def token(request: web.Request) -> web.Response:
            return web.json_response({"token": "t0ken"})

        async def manifest(request: web.Request) -> web.Response:
            if request.headers.get("Authorization") != "Bearer t0ken":
                realm = f"http://{request.host}/token"
                return web.json_response({"errors": []}, status=401, headers={"WWW-Authenticate": f'Bearer realm="{realm}"'})
            return web.Response(body=json.dumps(_MANIFEST).encode(), content_type=_MANIFEST["mediaType"])

        async def redirect(request: web.Request) -> web.Response:
            assert request.headers.get("Authorization") == "Bearer t0ken"
            raise web.HTTPTemporaryRedirect(target)

        app = web.Application()
        app.router.add_get("/token", token)
        app.router.add_get("/v2/a/b/manifests/{ref}", manifest)
        app.router.add_get("/v2/a/b/blobs/{digest}", redirect)
        async with TestServer(app, host="127.0.0.1", port=0) as server:
            ref = f"127.0.0.1:{server.port}/a/b:c"
            with pytest.raises(RegistryRefused, match=rf"a redirect from registry .* is on 127\.0\.0\.1:{cdn_server.port}, which"):
                await fetch_platforms(ref, allowed=parse(f"127.0.0.1:{server.port}"))
            assert seen == []
            both = parse(f"127.0.0.1:{server.port},127.0.0.1:{cdn_server.port}")
            assert await fetch_platforms(ref, allowed=both) == ("linux/arm64",)
            assert seen == [None]  # the registry's token stayed with the registry


async def test_a_redirect_within_the_registry_is_followed() -> None:
    async def manifest(request: web.Request) -> web.Response:
        return web.Response(body=json.dumps(_INDEX).encode(), content_type=_INDEX["mediaType"])

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/v2/a/b/manifests/real")

    app = web.Application()
    app.router.add_get("/v2/a/b/manifests/real", manifest)
    app.router.add_get("/v2/a/b/manifests/old", moved)
    async with TestServer(app, host="127.0.0.1", port=0) as server:
        found = await fetch_platforms(f"127.0.0.1:{server.port}/a/b:old", allowed=parse(f"127.0.0.1:{server.port}"))
    assert found == ("linux/amd64", "linux/arm/v7")


# -- a registry whose JSON has the wrong shapes ----------------------------------

_HOSTILE = {
    # An index whose entry's annotations are a list (was AttributeError).
    "index": {"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"digest": "sha256:" + "1" * 64, "platform": {"os": "linux", "architecture": "amd64"}, "annotations": ["x"]}]},
    # Its manifest: layers with a size that is not a number (was ValueError), a layers field that is a number.
    "sha256:" + "1" * 64: {"config": {"digest": "sha256:" + "c" * 64}, "layers": [{"digest": "sha256:" + "d" * 64, "size": "big"}]},
    "numbers": {"config": {"digest": "sha256:" + "c" * 64}, "layers": 7},
    # A config that is a list (was AttributeError).
    "listconfig": {"config": ["x"], "layers": []},
}


async def test_a_registry_sending_odd_shapes_is_a_registry_error_or_an_answer() -> None:
    """Every look-up ends in an answer or a RegistryError (502), never a 500 from a KeyError/TypeError."""

    async def manifest(request: web.Request) -> web.Response:
        return web.Response(body=json.dumps(_HOSTILE[request.match_info["ref"]]).encode(), content_type="application/json")

    async def blob(request: web.Request) -> web.Response:
        if request.match_info["digest"].startswith("sha256:c"):
            return web.json_response({"os": "linux", "architecture": "amd64", "config": {"Entrypoint": ["/app"]}})
        return web.Response(body=b"")  # an empty layer

    app = web.Application()
    app.router.add_get("/v2/a/b/manifests/{ref}", manifest)
    app.router.add_get("/v2/a/b/blobs/{digest}", blob)
    async with TestServer(app, host="127.0.0.1", port=0) as server:
        host, allowed = f"127.0.0.1:{server.port}", parse(f"127.0.0.1:{server.port}")
        for ref in ("index", "numbers"):
            read = await imagecheck.read_registry(f"{host}/a/b:{ref}", allowed=allowed)
            (platform,) = read.platforms
            assert platform.entry.not_found, platform  # /app is in no layer
        with pytest.raises(RegistryError, match="without a config digest"):
            await imagecheck.read_registry(f"{host}/a/b:listconfig", allowed=allowed)
