"""Kafka security settings: validation, the aiokafka kwargs, Faust's credentials, no leaks."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import faust
import pytest
from pydantic import ValidationError

from devtools.kafka_local import _make_keystore
from streams.app import broker_credentials
from streams.settings import Settings

SECRET = "s3cret-do-not-print"


def settings(**values: Any) -> Settings:
    return Settings(bootstrap_servers="kafka.example.com:9093", **values)


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tls")
    _make_keystore(folder, folder / "ca.pem")
    return folder / "ca.pem"


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    s = settings()
    assert s.kafka_client_kwargs() == {
        "bootstrap_servers": "kafka.example.com:9093",
        "security_protocol": "PLAINTEXT",
    }
    assert s.ssl_context() is None
    assert broker_credentials(s) is None


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs sasl_username and sasl_password"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u"}, "needs sasl_username"),
        ({"security_protocol": "TLS"}, "security_protocol"),
        ({"sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
        ({"ssl_keyfile": "k.pem"}, "ssl_keyfile needs ssl_certfile"),
    ],
    ids=["sasl-no-creds", "sasl-no-password", "unknown-protocol", "unknown-mechanism", "key-only"],
)
def test_invalid_security_settings_are_rejected(values: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        settings(**values)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_kwargs_and_credentials(ca_file: Path, mechanism: str) -> None:
    s = settings(
        security_protocol="SASL_SSL",
        sasl_mechanism=mechanism,
        sasl_username="alice",
        sasl_password=SECRET,
        ssl_cafile=ca_file,
    )
    kwargs = s.kafka_client_kwargs()
    assert isinstance(kwargs.pop("ssl_context"), ssl.SSLContext)
    assert kwargs == {
        "bootstrap_servers": "kafka.example.com:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "alice",
        "sasl_plain_password": SECRET,
    }
    credentials = broker_credentials(s)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == mechanism
    assert credentials.ssl_context is not None
    assert SECRET not in repr(credentials)


def test_sasl_plaintext_has_no_tls() -> None:
    s = settings(security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password=SECRET)
    assert "ssl_context" not in s.kafka_client_kwargs()
    credentials = broker_credentials(s)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_PLAINTEXT"


def test_ssl_context_verifies_the_broker(ca_file: Path) -> None:
    context = settings(security_protocol="SSL", ssl_cafile=ca_file).ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    relaxed = settings(security_protocol="SSL", ssl_cafile=ca_file, ssl_check_hostname=False)
    context = relaxed.ssl_context()
    assert context is not None and context.check_hostname is False
    assert isinstance(broker_credentials(relaxed), faust.SSLCredentials)


def test_a_missing_ca_file_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        settings(security_protocol="SSL", ssl_cafile=tmp_path / "missing.pem").ssl_context()


def test_the_password_is_never_in_reprs_or_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARROOM_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("WARROOM_SASL_USERNAME", "alice")
    monkeypatch.setenv("WARROOM_SASL_PASSWORD", SECRET)
    s = Settings()
    assert s.sasl_password is not None and s.sasl_password.get_secret_value() == SECRET
    for text in (repr(s), str(s), s.model_dump_json(), str(s.model_dump())):
        assert SECRET not in text


# --- the API token: the worker refuses a default, known-weak or short one --------------------

GOOD_TOKEN = "Yx3v9QeLr2mT8kWb1NcZ5pHd7sFg0aJu"


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        (None, None),  # no token: writes are refused (403), reads work
        (GOOD_TOKEN, None),
        ("0f1e2d3c4b5a69788796a5b4c3d2e1f0", None),  # uuid4().hex, as the tests' harness makes
        ("change-me", "9 characters, at least 32 are needed"),
        ("", "0 characters, at least 32 are needed"),
        (GOOD_TOKEN[:31], "31 characters, at least 32 are needed"),
        ("change-me-" + GOOD_TOKEN, "it holds a placeholder word"),
        ("CHANGE_ME" + GOOD_TOKEN, "it holds a placeholder word"),
        ("my-Super-Secret-api-token-for-prod", "it holds a placeholder word"),
        ("a" * 64, "only 1 different characters"),
        ("0123" * 10, "only 4 different characters"),
    ],
    ids=["none", "random", "uuid-hex", "compose-default", "empty", "short", "placeholder",
         "placeholder-case", "secret-word", "one-character", "four-characters"],
)  # fmt: skip
def test_weak_api_tokens_are_named_and_refused(token: str | None, problem: str | None) -> None:
    from pydantic import SecretStr

    from streams.settings import api_token_problem

    said = api_token_problem(None if token is None else SecretStr(token))
    if problem is None:
        assert said is None
        return
    assert said is not None and "\n" not in said
    assert said.startswith("WARROOM_API_TOKEN is too weak: ") and problem in said
    assert "secrets.token_urlsafe(32)" in said
    assert token is None or not token or token not in said  # the secret is never printed


def test_the_worker_refuses_to_start_with_a_weak_token(tmp_path: Path) -> None:
    """One line on stderr and exit status 2, before any connection to Kafka (none listens on
    the port it is given)."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env |= {"WARROOM_API_TOKEN": "change-me", "WARROOM_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
            "WARROOM_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("warroom worker: WARROOM_API_TOKEN is too weak: 9 characters")
