"""``check`` reads the real entrypoint from a real registry (Debian's docker-registry on 127.0.0.1).

Images are built from scratch here (layers as tar.gz, configs, manifests, an
index) and pushed with the registry API; nothing is pulled from the Internet.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from agent.delivery import wire
from agent.host import hostfacts
from collector.check import imagecheck
from collector.check.entrypoint_read import EntrypointCache
from collector.check.registry_policy import parse
from collector.errors import RegistryRefused
from enoexec.eventjson import to_json
from enoexec.facts import HostFacts
from enoexec.judge import runs
from tests import debs, elfs, require
from tests.images import EM_AARCH64, EM_ARM, EM_X86_64, elf
from tests.registry import _free_port, _token_cert, local_registry, push_layer_index, push_layers, registry_token, tar_layer
from tests.unit.test_hostfacts import fixture

AMD, ARM = elf(EM_X86_64), elf(EM_AARCH64)
AMD64_HOST = imagecheck.target_host("linux/amd64")
ARM64_HOST = imagecheck.target_host("linux/arm64")


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    with local_registry() as address:
        yield address


async def check(registry: str, ref: str, hosts: Sequence, **kw) -> tuple[imagecheck.ImageRead, dict[str, imagecheck.HostAnswer]]:
    read = await imagecheck.read_registry(ref, allowed=parse(registry), **kw)
    return read, {a.host_id: a for a in imagecheck.answer(read, hosts)}


async def test_a_mislabeled_arm64_manifest_fails_with_the_binary_platform(registry: str) -> None:
    push_layer_index(registry, "acme/mislabeled", "1", [("linux/amd64", [tar_layer([("app", AMD)])]),
                                                 ("linux/arm64", [tar_layer([("app", AMD)])])], ["/app"])

    read, by_host = await check(registry, f"{registry}/acme/mislabeled:1", [AMD64_HOST, ARM64_HOST])

    arm = by_host["linux/arm64"]
    assert arm.status == runs.FAILS and arm.verdict.cause == "mislabeled_image", arm
    assert "binary is linux/amd64" in arm.verdict.explanation and arm.chosen_platform == "linux/arm64"
    assert by_host["linux/amd64"].status == runs.RUNS
    assert read.index and {p.entry.binary.platform for p in read.platforms} == {"linux/amd64"}


async def test_a_symlink_into_a_lower_layer_found_through_path(registry: str) -> None:
    lower = tar_layer([("opt/real/app", ARM)])
    top = tar_layer([("usr/local/bin/app", "/opt/real/app")])
    push_layers(registry, "acme/linked", "1", "linux/arm64", [lower, top], ["app"])

    read, by_host = await check(registry, f"{registry}/acme/linked:1", [AMD64_HOST, ARM64_HOST])

    (p,) = read.platforms
    assert p.entry.binary.requested_path == "/usr/local/bin/app" and p.entry.binary.path == "/opt/real/app"
    assert by_host["linux/arm64"].status == runs.RUNS
    amd = by_host["linux/amd64"]  # a single image is run whatever its label: its file decides
    assert amd.status == runs.FAILS and amd.verdict.cause == "arch_mismatch" and "binary is linux/arm64" in amd.verdict.explanation


async def test_a_whiteout_in_the_top_layer_deletes_the_entrypoint(registry: str) -> None:
    push_layers(registry, "acme/deleted", "1", "linux/amd64", [tar_layer([("app", AMD)]), tar_layer([(".wh.app", b"")])], ["/app"])

    _, by_host = await check(registry, f"{registry}/acme/deleted:1", [AMD64_HOST])

    a = by_host["linux/amd64"]
    assert a.status == runs.FAILS and a.verdict.cause == runs.NOT_FOUND, a


async def test_a_script_whose_interpreter_is_missing(registry: str) -> None:
    push_layers(registry, "acme/script", "1", "linux/amd64", [tar_layer([("entry.sh", b"#!/bin/bash\nexec app\n")])], ["/entry.sh"])

    read, by_host = await check(registry, f"{registry}/acme/script:1", [AMD64_HOST])

    a = by_host["linux/amd64"]
    assert a.status == runs.FAILS and a.verdict.cause == runs.MISSING_INTERPRETER and "/bin/bash" in a.verdict.explanation, a


async def test_a_large_lower_layer_is_not_downloaded_and_the_answer_is_cached(registry: str) -> None:
    big = tar_layer([("blob.bin", os.urandom(30 * 1024 * 1024))], level=1)  # incompressible: 30 MiB on the wire
    push_layers(registry, "acme/big", "1", "linux/amd64", [big, tar_layer([("app", AMD)])], ["/app"])
    cache = EntrypointCache()

    read, by_host = await check(registry, f"{registry}/acme/big:1", [AMD64_HOST], cache=cache)

    assert by_host["linux/amd64"].status == runs.RUNS
    assert read.bytes_read < 64 * 1024, read.bytes_read  # the top layer only
    assert read.platforms[0].layers_read_whole == () or all(str(len(big)) not in w for w in read.platforms[0].layers_read_whole)
    again, _ = await check(registry, f"{registry}/acme/big:1", [AMD64_HOST], cache=cache)
    assert again.bytes_read == 0 and again.platforms[0].cached


# -- a registry that stalls mid-blob ---------------------------------------------


async def stalling_proxy(upstream: str, release: asyncio.Event) -> AsyncIterator[str]:
    """Forwards to ``upstream``; a blob's body stops after its first 100 bytes until ``release``."""
    async with aiohttp.ClientSession() as client:

        async def handle(request: web.Request) -> web.StreamResponse:
            async with client.get(f"http://{upstream}{request.path_qs}", headers={"Accept": request.headers.get("Accept", "*/*")},
                                  allow_redirects=True) as up:
                body = await up.read()
                if "/blobs/" not in request.path or len(body) < 1000:
                    return web.Response(body=body, status=up.status, headers={"Content-Type": up.headers.get("Content-Type", "")})
                resp = web.StreamResponse(status=200, headers={"Content-Length": str(len(body))})
                await resp.prepare(request)
                await resp.write(body[:100])
                await release.wait()
                return resp

        app = web.Application()
        app.router.add_get("/{tail:.*}", handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            yield f"127.0.0.1:{port}"
        finally:
            release.set()
            await runner.cleanup()


async def test_a_registry_stalling_mid_blob_gives_unknown_not_a_hang(registry: str) -> None:
    push_layers(registry, "acme/stall", "1", "linux/amd64", [tar_layer([("app", AMD + os.urandom(5000))], level=0)], ["/app"])
    release = asyncio.Event()
    gen = stalling_proxy(registry, release)
    proxy = await gen.__anext__()
    try:
        read, by_host = await check(proxy, f"{proxy}/acme/stall:1", [AMD64_HOST], timeout=3)
    finally:
        await gen.aclose()

    a = by_host["linux/amd64"]
    assert a.status == runs.UNKNOWN and "did not arrive within 3s" in a.verdict.explanation, a
    assert read.platforms[0].bytes_read == 100


# -- the CI gate: no collector, target platforms ----------------------------------


def test_the_ci_gate_fails_on_a_mislabeled_image(registry: str) -> None:
    push_layer_index(registry, "acme/gate", "1", [("linux/amd64", [tar_layer([("app", AMD)])]),
                                           ("linux/arm64", [tar_layer([("app", AMD)])])], ["/app"])
    ref = f"{registry}/acme/gate:1"
    gate = [sys.executable, "-m", "collector.cli", "check", ref, "--target", "linux/amd64", "--target", "linux/arm64",
            "--check-registries", registry, "--url", "127.0.0.1:1"]  # no collector there: none is needed

    out = subprocess.run([*gate, "--json"], capture_output=True, text=True, timeout=120)

    assert out.returncode == 1, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    assert [(h["host_id"], h["cause"]) for h in doc["cannot_run"]] == [("linux/arm64", "mislabeled_image")]
    assert "binary is linux/amd64" in doc["cannot_run"][0]["detail"]
    out = subprocess.run(gate, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "FAIL linux/arm64" in out.stdout and "binary is linux/amd64" in out.stdout, out.stdout


# -- the recipes in deploy/ci/ run as a pipeline would run them ---------------------

CI = Path(__file__).resolve().parents[2] / "deploy" / "ci"


def github_script(text: str) -> str:
    """The ``run: |`` block of the gate step."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "run: |")
    indent = len(lines[start]) - len(lines[start].lstrip())
    body = []
    for line in lines[start + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        body.append(line.strip())
    return "\n".join(body)


def gitlab_script(text: str) -> str:
    """The ``script:`` items of the job (``- >`` items folded into one line)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "script:")
    commands: list[str] = []
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not line.startswith("    "):
            break
        if stripped.startswith("- "):
            commands.append("" if stripped == "- >" else stripped[2:])
        else:
            commands[-1] = (commands[-1] + " " + stripped).strip()
    return "\n".join(commands)


def pipeline(script: str, image: str, registry: str, tmp_path: Path, wheel: str) -> subprocess.CompletedProcess[str]:
    """Run a recipe's shell with ``bash -e`` as the CI runner does. ``pip`` only checks that it is given
    enoexec's wheel file with the collector extra (enoexec is on no index: a bare ``enoexec[collector]``
    would install a stranger's package, or nothing), and ``enoexec-collector`` runs this checkout
    (the only stand-ins)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "pip").write_text('#!/bin/sh\ncase "$*" in "install "*enoexec-*-py3-none-any.whl"[collector]") exit 0 ;; esac\n'
                                 'echo "pip stand-in: not enoexec\'s wheel with [collector]: $*" >&2; exit 1\n')
    (bin_dir / "enoexec-collector").write_text(f"#!/bin/sh\ncd {Path.cwd()} && exec {sys.executable} -m collector.cli \"$@\"\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "IMAGE": image, "CI_REGISTRY": registry,
           "ENOEXEC_WHEEL": wheel}
    return subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)


@pytest.mark.parametrize("recipe", ["github-actions.yml", "gitlab-ci.yml"])
def test_the_ci_recipes_fail_a_pipeline_on_a_mislabeled_image_only(registry: str, recipe: str, tmp_path: Path) -> None:
    text = (CI / recipe).read_text()
    script = github_script(text) if recipe.startswith("github") else gitlab_script(text)
    script = script.replace("--check-registries \"default,$CI_REGISTRY\"", "--check-registries \"$CI_REGISTRY\"")
    if "--check-registries" not in script:  # the public-registry recipe: allow the loopback one
        script = script.replace("--strict", "--strict --check-registries \"$CI_REGISTRY\"")
    arm32 = elf(EM_ARM, bits=32)
    push_layer_index(registry, "acme/ci", "bad", [("linux/amd64", [tar_layer([("app", AMD)])]),
                                           ("linux/arm64", [tar_layer([("app", AMD)])]),
                                           ("linux/arm/v7", [tar_layer([("app", arm32)])])], ["/app"])
    push_layer_index(registry, "acme/ci", "good", [("linux/amd64", [tar_layer([("app", AMD)])]),
                                            ("linux/arm64", [tar_layer([("app", ARM)])]),
                                            ("linux/arm/v7", [tar_layer([("app", arm32)])])], ["/app"])

    wheel = re.search(r"ENOEXEC_WHEEL: (\S+)", text)  # the recipe's env/variables
    assert wheel, "the recipe names no ENOEXEC_WHEEL"
    bad = pipeline(script, f"{registry}/acme/ci:bad", registry, tmp_path, wheel.group(1))
    good = pipeline(script, f"{registry}/acme/ci:good", registry, tmp_path, wheel.group(1))

    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "linux/arm64" in bad.stdout and "mislabeled_image" in bad.stdout, bad.stdout
    assert good.returncode == 0, good.stdout + good.stderr


# -- token auth: a registry that demands Bearer tokens from its realm ---------------


async def test_reading_through_registry_token_auth(tmp_path: Path) -> None:
    """Pushed through an open registry on the same storage, then served with token auth: the
    check fetches a token from the realm (a token service here, signing real ES256 JWTs the
    registry verifies) and reads manifests, config and layer blobs with it."""
    storage = tmp_path / "storage"
    with local_registry(storage=storage) as open_registry:
        push_layer_index(open_registry, "acme/private", "1", [("linux/amd64", [tar_layer([("app", AMD)])]),
                                                              ("linux/arm64", [tar_layer([("app", AMD)])])], ["/app"])
    cert = _token_cert(tmp_path)
    asked: list[str] = []

    async def token(request: web.Request) -> web.Response:
        asked.append(request.query.get("scope", ""))
        repository = request.query.get("scope", "").split(":")[1]
        return web.json_response({"token": registry_token(cert, repository=repository)})

    app = web.Application()
    app.router.add_get("/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    realm_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        with local_registry(storage=storage, token_realm=f"http://127.0.0.1:{realm_port}/token", token_cert=cert) as registry:
            read = await imagecheck.read_registry(f"{registry}/acme/private:1", allowed=parse(f"{registry},127.0.0.1:{realm_port}"))
    finally:
        await runner.cleanup()

    assert asked == ["repository:acme/private:pull"]  # one token, for every request of the check
    by_host = {a.host_id: a for a in imagecheck.answer(read, [AMD64_HOST, ARM64_HOST])}
    assert by_host["linux/arm64"].verdict.cause == "mislabeled_image" and by_host["linux/amd64"].status == runs.RUNS


# -- the allow-list holds for every blob byte ---------------------------------------


async def test_a_blob_redirect_off_the_allow_list_is_refused(registry: str) -> None:
    push_layers(registry, "acme/redirected", "1", "linux/amd64", [tar_layer([("app", AMD)])], ["/app"])
    elsewhere = f"127.0.0.1:{_free_port()}"  # nothing there: it must never be contacted anyway
    manifest = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"http://{registry}/v2/acme/redirected/manifests/1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})).read())
    layers = {layer["digest"] for layer in manifest["layers"]}

    async with aiohttp.ClientSession() as client:
        async def handle(request: web.Request) -> web.StreamResponse:
            if request.path.rsplit("/", 1)[1] in layers:  # a layer blob: "on the CDN"
                raise web.HTTPTemporaryRedirect(f"http://{elsewhere}/cdn{request.path}")
            async with client.get(f"http://{registry}{request.path_qs}", headers={"Accept": request.headers.get("Accept", "*/*")}) as up:
                return web.Response(body=await up.read(), status=up.status, headers={"Content-Type": up.headers.get("Content-Type", "")})

        app = web.Application()
        app.router.add_get("/{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        proxy = f"127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        try:
            with pytest.raises(RegistryRefused, match=rf"a redirect from registry {proxy} is on {elsewhere}"):
                await imagecheck.read_registry(f"{proxy}/acme/redirected:1", allowed=parse(proxy))
        finally:
            await runner.cleanup()


# -- look-alikes before anything runs, against fixture hosts' facts (issue 17 x issue 19) --


def fixture_host(name: str, host_id: str) -> HostFacts:
    """A fixture host (tests/fixtures/hosts) as the collector knows it: the agent's Hello facts in
    their JSON form (the store's host row), through the collector's own ``host_facts``."""
    facts = to_json(wire.host_pb(hostfacts.gather(**fixture(name, host_id=host_id))))
    return imagecheck.host_facts(host_id, facts["platform"], facts)


async def test_a_crlf_script_and_a_cpu_level_marked_binary_fail_before_they_run(registry: str) -> None:
    old_x86, new_x86 = fixture_host("x86-no-avx2", "sandy"), fixture_host("x86-qemu-aarch64", "coffee")
    assert (old_x86.cpu_level, new_x86.cpu_level) == ("x86-64-v2", "x86-64-v3")
    push_layers(registry, "acme/crlf", "1", "linux/amd64",
                [tar_layer([("bin/sh", elfs.program())]), tar_layer([("entry.sh", b"#!/bin/sh\r\necho hi\r\n")])], ["/entry.sh"])
    push_layers(registry, "acme/v3", "1", "linux/amd64", [tar_layer([("app", elfs.program(isa_level=3))])], ["/app"])

    read, by_host = await check(registry, f"{registry}/acme/crlf:1", [old_x86, new_x86])

    for a in by_host.values():
        assert (a.status, a.verdict.cause, a.verdict.hint_id) == (runs.FAILS, "crlf_shebang", "strip_crlf"), a
    assert read.platforms[0].entry.missing == "/bin/sh\r" and "carriage return" in by_host["sandy"].verdict.explanation

    read, by_host = await check(registry, f"{registry}/acme/v3:1", [old_x86, new_x86])

    sandy = by_host["sandy"]
    assert (sandy.status, sandy.verdict.cause, sandy.verdict.hint_id) == (runs.FAILS, "cpu_level", "match_cpu_level"), sandy
    assert "x86-64-v3" in sandy.verdict.explanation and "x86-64-v2" in sandy.verdict.explanation
    assert by_host["coffee"].status == runs.RUNS
    assert read.platforms[0].files_read_to_end == ()  # only a 32-bit ARM ELF is read to its end


@pytest.fixture(scope="module")
def busybox() -> bytes:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        require.missing("apt-get and dpkg-deb are needed to fetch a Debian armhf binary")
    return debs.binary("busybox-static", "armhf", "bin/busybox")


def test_a_pi_zero_cannot_run_debians_armhf_busybox(registry: str, busybox: bytes, tmp_path: Path) -> None:
    """A real armhf (ARMv7) binary, its .ARM.attributes in its last KiB: ``check --target linux/arm/v6`` and a Pi
    Zero's facts file say cpu_level; the file is read to its end, and the bytes that cost are reported."""
    layer = tar_layer([("bin/busybox", busybox)])
    push_layers(registry, "acme/bb", "1", "linux/arm/v7", [layer], ["/bin/busybox", "true"])
    pi_zero = to_json(wire.host_pb(hostfacts.gather(**fixture("pi-zero-armv6", host_id="pi-zero"))))
    pi_4 = to_json(wire.host_pb(hostfacts.gather(**fixture("pi-armv7l", host_id="pi-4"))))
    facts = tmp_path / "pis.json"
    facts.write_text(json.dumps([pi_zero, pi_4]))
    ref = f"{registry}/acme/bb:1"
    base = [sys.executable, "-m", "collector.cli", "check", ref, "--check-registries", registry, "--json"]

    for how in (["--target", "linux/arm/v6", "--target", "linux/arm/v7"], ["--facts", str(facts)]):
        out = subprocess.run([*base, *how], capture_output=True, text=True, timeout=300)
        assert out.returncode == 1, out.stdout + out.stderr
        doc = json.loads(out.stdout)
        assert [(h["status"], h["cause"]) for h in doc["cannot_run"]] == [("fails", "cpu_level")], doc["hosts"]
        assert doc["cannot_run"][0]["host_id"] in ("linux/arm/v6", "pi-zero") and "armv6" in doc["cannot_run"][0]["detail"]
        (entry,) = doc["entrypoints"]
        assert entry["binary_platform"] == "linux/arm/v7" and entry["size"] == len(busybox)
        assert entry["files_read_to_end"] == [f"/bin/busybox ({len(busybox)} bytes)"]
        assert len(layer) // 2 < entry["bytes_read"] <= len(layer), (entry["bytes_read"], len(layer))  # the one file, once
