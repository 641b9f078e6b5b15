"""--check-registries: which hosts 'check' may contact."""

from __future__ import annotations

import pytest

from collector.check.registry_policy import parse
from collector.errors import RegistryRefused


def test_default_allows_public_registries_and_their_token_and_cdn_hosts() -> None:
    policy = parse("default")
    for host in ("registry-1.docker.io", "auth.docker.io", "production.cloudflare.docker.com", "ghcr.io",
                 "quay.io", "cdn01.quay.io", "gcr.io", "eu.gcr.io", "registry.k8s.io", "mcr.microsoft.com", "public.ecr.aws"):
        assert policy.allows(host, 443), host
    for host, port in (("127.0.0.1", 443), ("localhost", 5000), ("169.254.169.254", 80), ("registry-1.docker.io", 8080),
                       ("evil.quay.io.example", 443), ("metadata.google.internal", 80), ("10.0.0.5", 443)):
        assert not policy.allows(host, port), (host, port)


def test_entries_are_hosts_ports_and_subdomain_wildcards() -> None:
    policy = parse(" registry.corp , 127.0.0.1:5000, *.mirror.example, [::1]:5001 ")
    assert policy.allows("registry.corp", 443) and policy.allows("REGISTRY.corp", 80)
    assert not policy.allows("registry.corp", 5000)
    assert policy.allows("127.0.0.1", 5000) and not policy.allows("127.0.0.1", 5001)
    assert policy.allows("a.mirror.example", 443) and policy.allows("b.a.mirror.example", 443)
    assert not policy.allows("mirror.example", 443) and not policy.allows("xmirror.example", 443)
    assert policy.allows("::1", 5001)
    assert not policy.allows("docker.io", 443)


def test_docker_io_names_the_hub_hosts_and_empty_disables() -> None:
    assert parse("docker.io").allows("registry-1.docker.io", 443)
    assert parse("").disabled and parse("none").disabled
    assert parse("*").allows("10.1.2.3", 22)


def test_check_url_names_the_host_and_the_setting() -> None:
    policy = parse("ghcr.io")
    policy.check_url("https://ghcr.io/v2/x/manifests/1", "registry ghcr.io")
    with pytest.raises(RegistryRefused, match=r"token realm is on 10\.0\.0\.1:443, which --check-registries \(ghcr.io\) does not allow"):
        policy.check_url("https://10.0.0.1/token", "token realm")
    with pytest.raises(RegistryRefused, match="not an HTTPS URL"):
        policy.check_url("file:///etc/passwd", "a redirect")
    with pytest.raises(RegistryRefused, match="not an HTTPS URL"):
        policy.check_url("http://ghcr.io/token", "token realm")
    policy.check_url("http://ghcr.io/token", "token realm", plain_http=True)


@pytest.mark.parametrize("bad", ["host:port", "host:0", "a b", "x/y", "h:99999"])
def test_bad_entries_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=repr(bad).replace("[", r"\[")):
        parse(bad)


def test_a_malformed_url_is_refused_not_a_value_error() -> None:
    policy = parse("127.0.0.1:5000")
    for url in ("http://127.0.0.1:+50317/t", "https://[::1/t", "https://127.0.0.1:99999/t"):
        with pytest.raises(RegistryRefused, match="not a valid URL"):
            policy.check_url(url, "redirect Location", plain_http=True)
