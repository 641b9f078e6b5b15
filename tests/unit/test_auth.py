import pytest

from collector import auth
from collector.errors import ConfigError
from collector.ingest.ratelimit import TokenBucket


def test_tokens_bind_a_host_and_only_hashes_are_kept() -> None:
    t1, t2 = auth.new_token(), auth.new_token()
    tokens = auth.parse_tokens([f"pi-01 {auth.token_hash(t1)}", "# comment", "", f"gv-02 {auth.token_hash(t2)}  # graviton"])
    assert tokens.host_for(t1) == "pi-01"
    assert tokens.host_for(t2) == "gv-02"
    assert tokens.host_for("guess") is None
    assert t1 not in repr(tokens) and t2 not in repr(tokens)


@pytest.mark.parametrize("line", ["pi-01", "pi-01 nothex", "pi-01 " + "a" * 63, "a b c"])
def test_bad_token_lines_name_the_line(line: str) -> None:
    with pytest.raises(ConfigError, match="line 1"):
        auth.parse_tokens([line])


def test_bearer_from_metadata() -> None:
    assert auth.bearer([("user-agent", "x"), ("authorization", "Bearer abc ")]) == "abc"
    assert auth.bearer([("Authorization", b"bearer xyz")]) == "xyz"
    assert auth.bearer([("authorization", "Basic abc")]) is None
    assert auth.bearer([]) is None


def test_certificate_hosts() -> None:
    assert auth.certificate_hosts({}) is None
    assert auth.certificate_hosts({"transport_security_type": [b"insecure"]}) is None
    ctx = {
        "transport_security_type": [b"ssl"],
        "x509_common_name": [b"web-01"],
        "x509_subject_alternative_name": [b"enoexec://host/web-01", b"web-01"],
    }
    assert auth.certificate_hosts(ctx) == ("web-01",)


def test_token_bucket_throttles_a_flood_only() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=20, clock=lambda: now[0])
    assert bucket.delay(20) == 0.0  # the burst is free
    assert bucket.delay(10) == pytest.approx(1.0)  # 10 over at 10/s
    now[0] += 2.0
    assert bucket.delay(5) == 0.0  # refilled
