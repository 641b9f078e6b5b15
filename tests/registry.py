"""A real local registry for tests, and helpers that push tiny images into it.

``local_registry()`` runs Debian's ``docker-registry`` (distribution 2.x) on
127.0.0.1 with filesystem storage in a temporary directory. The push helpers speak
plain HTTP API v2 with urllib: blobs by monolithic upload, then manifests.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests import require

REGISTRY_BINARY = "/usr/bin/docker-registry"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
IN_TOTO = "application/vnd.in-toto+json"

_CONFIG_YAML = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
http:
  addr: 127.0.0.1:{port}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_TOKEN_AUTH_YAML = """\
auth:
  token:
    realm: {realm}
    service: enoexec-test
    issuer: enoexec-test
    rootcertbundle: {cert}
"""


def _token_cert(directory: str | Path) -> Path:
    """A self-signed certificate for the registry's token auth, its key beside it (``token.key``)."""
    if shutil.which("openssl") is None:
        require.missing("openssl not found: install the openssl package to run this test")
    cert, key = Path(directory, "token.crt"), Path(directory, "token.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=enoexec-test"],
        check=True, capture_output=True,
    )
    return cert


def _der_to_raw(der: bytes) -> bytes:
    """An ECDSA signature as openssl writes it (DER SEQUENCE of r, s) -> JWS's r||s, 32 bytes each."""
    assert der[0] == 0x30
    pos = 2 if der[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        assert der[pos] == 0x02
        length = der[pos + 1]
        out += der[pos + 2 : pos + 2 + length].lstrip(b"\0").rjust(32, b"\0")
        pos += 2 + length
    return out


def registry_token(cert: Path, *, repository: str, service: str = "enoexec-test", issuer: str = "enoexec-test") -> str:
    """A Bearer token docker-registry's token auth accepts for pulling ``repository``: an ES256
    JWT with the certificate in ``x5c``, signed by ``token.key`` beside it (with openssl)."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    der = subprocess.run(["openssl", "x509", "-in", str(cert), "-outform", "DER"], check=True, capture_output=True).stdout
    now = int(time.time())
    header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
    claims = {"iss": issuer, "sub": "anonymous", "aud": service, "exp": now + 300, "nbf": now - 10, "iat": now,
              "jti": b64(os.urandom(9)), "access": [{"type": "repository", "name": repository, "actions": ["pull"]}]}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(cert.with_name("token.key"))],
                         input=signing_input.encode(), check=True, capture_output=True).stdout
    return f"{signing_input}.{b64(_der_to_raw(sig))}"


@contextmanager
def local_registry(
    *, binary: str = REGISTRY_BINARY, start_timeout: float = 20.0, token_realm: str = "",
    storage: Path | None = None, token_cert: Path | None = None,
) -> Iterator[str]:
    """Run a registry; yield ``127.0.0.1:<port>``; stop it and delete its storage afterwards.

    ``token_realm``: demand Bearer tokens from that realm URL (every request is then a
    401 challenge naming it; pushing does not work), signed by the key of ``token_cert``
    (default: a fresh certificate nobody holds the key of). ``storage``: keep the
    images there (and do not delete them), e.g. to push through an open registry
    first and serve them with token auth after."""
    if not Path(binary).exists():
        require.missing(f"{binary} not found: install Debian's docker-registry package to run this test")
    with tempfile.TemporaryDirectory(prefix="enoexec-registry-") as tmp:
        port = _free_port()
        config = Path(tmp, "config.yml")
        text = _CONFIG_YAML.format(root=storage or Path(tmp, "storage"), port=port)
        if token_realm:
            text += _TOKEN_AUTH_YAML.format(realm=token_realm, cert=token_cert or _token_cert(tmp))
        config.write_text(text)
        address = f"127.0.0.1:{port}"
        with open(Path(tmp, "registry.log"), "wb") as log:
            proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
            try:
                _wait_ready(address, proc, start_timeout, Path(tmp, "registry.log"))
                yield address
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


def _wait_ready(address: str, proc: subprocess.Popen[bytes], bound: float, log: Path) -> None:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {proc.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://{address}/v2/", timeout=1) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as e:
            if e.code == 401:  # token auth: up, and asking for a token
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"docker-registry on {address} not ready after {bound}s: {log.read_text()}")


def _request(method: str, url: str, body: bytes = b"", content_type: str = "") -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body if method in ("POST", "PUT") else None, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{method} {url} -> {e.code}: {e.read()[:500]!r}") from e


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(registry: str, repo: str, data: bytes) -> str:
    """Upload ``data`` as a blob (POST then monolithic PUT); return its digest."""
    digest = _digest(data)
    _, headers = _request("POST", f"http://{registry}/v2/{repo}/blobs/uploads/")
    location = headers["Location"]
    if location.startswith("/"):
        location = f"http://{registry}{location}"
    sep = "&" if "?" in location else "?"
    _request("PUT", f"{location}{sep}digest={digest}", data, "application/octet-stream")
    return digest


def push_manifest(registry: str, repo: str, reference: str, manifest: dict, media_type: str) -> str:
    """PUT a manifest under a tag or digest; return its digest."""
    body = json.dumps(manifest, separators=(",", ":")).encode()
    _request("PUT", f"http://{registry}/v2/{repo}/manifests/{reference}", body, media_type)
    return _digest(body)


def _layer(platform: str) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("platform.txt")
        text = platform.encode()
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    return gzip.compress(raw.getvalue(), mtime=0)


def push_image(
    registry: str,
    repo: str,
    reference: str,
    platform: str,
    *,
    docker: bool = False,
    config: dict | None = None,
) -> tuple[str, int]:
    """Push one single-platform image under a tag ("" for by digest); return its digest and size.

    ``config`` overrides the config blob's platform fields (e.g. ``{"variant": "v8"}``).
    """
    os_name, arch, *variant = platform.split("/")
    layer = _layer(platform)
    diff_id = _digest(gzip.decompress(layer))
    image_config = {"architecture": arch, "os": os_name, "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    if variant:
        image_config["variant"] = variant[0]
    image_config.update(config or {})
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    config_digest = push_blob(registry, repo, config_bytes)
    layer_digest = push_blob(registry, repo, layer)
    media, config_media, layer_media = (
        (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER) if docker else (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": media,
        "config": {"mediaType": config_media, "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": layer_media, "digest": layer_digest, "size": len(layer)}],
    }
    body = json.dumps(manifest, separators=(",", ":")).encode()
    digest = push_manifest(registry, repo, reference or _digest(body), manifest, media)
    return digest, len(body)


def _push_attestation(registry: str, repo: str, subject: str) -> tuple[str, int]:
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "subject": subject}).encode()
    config = b"{}"
    config_digest = push_blob(registry, repo, config)
    layer_digest = push_blob(registry, repo, statement)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": IN_TOTO, "digest": layer_digest, "size": len(statement)}],
    }
    body = json.dumps(manifest, separators=(",", ":")).encode()
    digest = push_manifest(registry, repo, _digest(body), manifest, OCI_MANIFEST)
    return digest, len(body)


def push_multiplatform_index(
    registry: str,
    repo: str,
    tag: str,
    platforms: Sequence[str],
    *,
    docker: bool = False,
    attestation: bool = False,
) -> str:
    """Push one image per platform and an index over them under ``tag``; return its digest.

    ``docker=False`` pushes OCI manifests and an OCI image index; ``docker=True`` pushes
    Docker schema 2 manifests and a Docker manifest list. ``attestation`` adds a
    BuildKit-style ``unknown/unknown`` attestation entry, as ``docker buildx`` does.
    """
    entries = []
    for platform in platforms:
        os_name, arch, *variant = platform.split("/")
        digest, size = push_image(registry, repo, "", platform, docker=docker)
        described = {"architecture": arch, "os": os_name}
        if variant:
            described["variant"] = variant[0]
        media = DOCKER_MANIFEST if docker else OCI_MANIFEST
        entries.append({"mediaType": media, "digest": digest, "size": size, "platform": described})
    if attestation and entries:
        digest, size = _push_attestation(registry, repo, entries[0]["digest"])
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": size,
                "platform": {"architecture": "unknown", "os": "unknown"},
                "annotations": {
                    "vnd.docker.reference.digest": entries[0]["digest"],
                    "vnd.docker.reference.type": "attestation-manifest",
                },
            }
        )
    index_media = DOCKER_LIST if docker else OCI_INDEX
    index = {"schemaVersion": 2, "mediaType": index_media, "manifests": entries}
    return push_manifest(registry, repo, tag, index, index_media)


def tar_layer(items: Sequence[tuple[str, bytes | str]], *, level: int = 6) -> bytes:
    """A gzip'd layer of files (mode 0755); a ``str`` item is a symlink target."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in items:
            ti = tarfile.TarInfo(path)
            if isinstance(data, str):
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, data, 0o777
                tar.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o755
                tar.addfile(ti, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), compresslevel=level, mtime=0)


def push_layers(registry: str, repo: str, tag: str, platform: str, layers: Sequence[bytes], entrypoint: Sequence[str]) -> tuple[str, int]:
    """Push an OCI image of ``layers`` (bottom first) with that entrypoint under ``tag`` ("" by digest): (digest, size)."""
    os_name, arch, *variant = platform.split("/")
    config = {"architecture": arch, "os": os_name, "config": {"Entrypoint": list(entrypoint), "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(gzip.decompress(b)).hexdigest() for b in layers]}}
    if variant:
        config["variant"] = variant[0]
    config_bytes = json.dumps(config).encode()
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": push_blob(registry, repo, config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": OCI_LAYER, "digest": push_blob(registry, repo, b), "size": len(b)} for b in layers],
    }
    body = json.dumps(manifest, separators=(",", ":")).encode()
    digest = push_manifest(registry, repo, tag or "sha256:" + hashlib.sha256(body).hexdigest(), manifest, OCI_MANIFEST)
    return digest, len(body)


def push_layer_index(registry: str, repo: str, tag: str, parts: Sequence[tuple[str, Sequence[bytes]]], entrypoint: Sequence[str]) -> str:
    """Push an OCI index over one image per (declared platform, layers): its digest."""
    entries = []
    for platform, layers in parts:
        digest, size = push_layers(registry, repo, "", platform, layers, entrypoint)
        os_name, arch, *_ = platform.split("/")
        entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": size, "platform": {"os": os_name, "architecture": arch}})
    return push_manifest(registry, repo, tag, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, OCI_INDEX)
