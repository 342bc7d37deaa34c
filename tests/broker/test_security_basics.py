"""Security basics against real workers: tokens on every write, loopback by default, body size
limits, signed webhook pages, and no secret in any log line."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from devtools.kafka_local import free_port
from streams.settings import Settings
from tests.harness import RunningWorker, WebhookServer, consume, eventually, new_worker

pytestmark = pytest.mark.broker

# Every endpoint that changes something, with a body it would accept.
WRITES: list[tuple[str, str, dict[str, Any] | None]] = [
    *[
        ("POST", f"/api/incidents/inc-x/{action}", {"actor": "alice", "text": "t"})
        for action in ("acknowledge", "mitigate", "resolve", "reopen", "notes")
    ],
    ("POST", "/api/incidents/inc-x/severity", {"severity": "SEV2"}),
    ("POST", "/api/incidents/inc-x/roles", {"role": "commander", "person": "alice"}),
    ("POST", "/api/incidents/inc-x/tasks/check", {"actor": "alice"}),
    ("POST", "/api/alerts/alertmanager", {"status": "firing", "alerts": []}),
    ("POST", "/api/alerts/pagerduty", {"event_action": "acknowledge", "dedup_key": "k"}),
    ("POST", "/api/silences", {"matchers": {"service": "x"}, "duration_s": 60}),
    ("DELETE", "/api/silences/sil-x", None),
]


async def call(
    base_url: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, base_url + path, json=body, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


def signed_catalog(hook_url: str, smtp_port: int) -> dict[str, Any]:
    contacts = [
        {"channel": "webhook", "address": hook_url},
        {"channel": "email", "address": "alice@example.com"},
    ]
    return {
        "services": {"checkout": {"team": "payments", "tier": 1}},
        "teams": {"payments": {"members": ["alice"], "escalation": [{"targets": ["alice"]}]}},
        "people": {"alice": {"contacts": contacts}},
    }


def trigger(service: str = "checkout", dedup_key: str = "sec-1") -> dict[str, Any]:
    return {
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": "checkout is down",
            "source": "probe",
            "severity": "critical",
            "custom_details": {"service": service},
        },
    }


class RawWebhookServer(WebhookServer):
    """The harness's webhook server, also keeping each request's exact body bytes."""

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(
            {"headers": dict(request.headers), "json": json.loads(body or b"null"), "raw": body}
        )
        return web.Response(status=self.status, text="ok")


# --- (a) tokens --------------------------------------------------------------------------------


async def test_every_write_needs_the_token(start_worker: Callable[..., RunningWorker]) -> None:
    worker = start_worker()
    wrong = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {worker.token[:-1]}"},
        {"Authorization": f"Bearer {worker.token}x"},
        {"Authorization": f"Bearer {worker.token.upper()}"},
        {"Authorization": f"Basic {worker.token}"},
        {"Authorization": worker.token},
        {"X-Api-Token": worker.token},
    ]
    for method, path, body in WRITES:
        for headers in wrong:
            status, answer = await call(worker.base_url, method, path, body, headers)
            assert status == 401, (method, path, headers, status, answer)
            assert isinstance(answer["error"], str) and answer["error"], answer
        # The right token gets past the check (to 2xx, or a 4xx about the request itself).
        status, answer = await call(worker.base_url, method, path, body, worker.headers())
        assert status not in (401, 403) and status < 500, (method, path, status, answer)
    # A PagerDuty routing_key equal to the token authorizes, a different one does not.
    status, _ = await call(worker.base_url, "POST", "/api/alerts/pagerduty",
                           {**trigger(), "routing_key": worker.token})  # fmt: skip
    assert status == 202
    for key in ("nope", worker.token[:-1], worker.token + "\ud800", ""):
        status, _ = await call(worker.base_url, "POST", "/api/alerts/pagerduty",
                               {**trigger(), "routing_key": key})  # fmt: skip
        assert status == 401, key
    # Reads stay open.
    assert (await call(worker.base_url, "GET", "/api/incidents"))[0] == 200


async def test_writes_answer_403_when_no_token_is_configured(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    worker = new_worker(kafka_bootstrap, tmp_path, "no-token", None, {})
    del worker.env["WARROOM_API_TOKEN"]
    worker.start()
    try:
        for method, path, body in WRITES:
            for headers in ({}, worker.headers(), {"Authorization": "Bearer "}):
                status, answer = await call(worker.base_url, method, path, body, headers)
                assert status == 403, (method, path, headers, status, answer)
                assert "WARROOM_API_TOKEN" in answer["error"], answer
        status, _ = await call(worker.base_url, "POST", "/api/alerts/pagerduty",
                               {**trigger(), "routing_key": worker.token})  # fmt: skip
        assert status == 403
        assert (await call(worker.base_url, "GET", "/api/incidents"))[0] == 200
    finally:
        worker.stop()


# --- (b) loopback ------------------------------------------------------------------------------


def non_loopback_ipv4() -> str | None:
    """This machine's address on its default route, if it has one (no packet is sent)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: a route lookup only
        address = str(probe.getsockname()[0])
    except OSError:
        address = ""
    finally:
        probe.close()
    candidates = [address]
    with contextlib.suppress(OSError):
        candidates += [
            str(info[4][0])
            for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        ]
    for candidate in candidates:
        if candidate and not candidate.startswith("127.") and candidate != "0.0.0.0":
            return candidate
    return None


def test_the_api_binds_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WARROOM_WEB_BIND", raising=False)
    assert Settings().web_bind == "127.0.0.1"
    assert Settings.model_fields["web_bind"].default == "127.0.0.1"


async def test_the_worker_is_not_reachable_on_other_addresses(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker()  # the harness leaves WARROOM_WEB_BIND unset: the default
    assert "WARROOM_WEB_BIND" not in worker.env
    port = int(worker.base_url.rsplit(":", 1)[1])
    assert f"HTTP API on http://127.0.0.1:{port}" in worker.log_text()
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    address = non_loopback_ipv4()
    if address is None:  # a machine with loopback only: nothing else to reach
        return
    # The address is reachable here: a listener on all interfaces answers on it ...
    with socket.create_server(("0.0.0.0", 0)) as control:
        socket.create_connection((address, control.getsockname()[1]), timeout=5).close()
    # ... but the worker's port is refused there.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address, port), timeout=5).close()


# --- (c) size limit ----------------------------------------------------------------------------


async def test_a_body_over_the_limit_gets_413_with_a_json_error(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(web_max_body_bytes=64 * 1024)
    big = {"matchers": {"service": "x"}, "duration_s": 60, "comment": "c", "padding": "x" * 65536}
    for path in ("/api/silences", "/api/alerts/alertmanager", "/api/incidents/inc-x/notes"):
        status, answer = await call(worker.base_url, "POST", path, big, worker.headers())
        assert status == 413, (path, status, answer)
        assert "too large" in answer["error"].lower(), answer
    # Just under the limit is read (and judged on its content).
    small = {**big, "padding": "x" * (60 * 1024)}  # an unknown field: ignored
    status, answer = await call(worker.base_url, "POST", "/api/silences", small, worker.headers())
    assert status == 201, answer


# --- (d) webhook signatures --------------------------------------------------------------------


async def test_webhook_pages_carry_an_hmac_signature_over_the_exact_body(
    start_worker: Callable[..., RunningWorker],
) -> None:
    secret = "whsec-known-8c1f7a"
    hook = RawWebhookServer()
    await hook.start()
    try:
        worker = start_worker(signed_catalog(hook.url, free_port()), webhook_secret=secret,
                              delivery_attempts=2)  # fmt: skip
        status, _ = await call(worker.base_url, "POST", "/api/alerts/pagerduty", trigger(),
                               worker.headers())  # fmt: skip
        assert status == 202
        [request] = await hook.wait_for(1, timeout_s=30)
        raw: bytes = request["raw"]
        given = request["headers"]["X-Warroom-Signature"]
        expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(given, expected)
        assert request["json"]["incident_id"] and request["json"]["recipient"] == "alice"
        # Over anything else (another secret, the body re-serialized or altered) it fails.
        other = "sha256=" + hmac.new(b"other", raw, hashlib.sha256).hexdigest()
        assert given != other
        altered = raw.replace(b"alice", b"mallory")
        assert given != "sha256=" + hmac.new(secret.encode(), altered, hashlib.sha256).hexdigest()
    finally:
        await hook.stop()


async def test_webhook_pages_are_unsigned_without_a_secret(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    worker = start_worker(signed_catalog(webhook_server.url, free_port()), delivery_attempts=2)
    status, _ = await call(worker.base_url, "POST", "/api/alerts/pagerduty", trigger(),
                           worker.headers())  # fmt: skip
    assert status == 202
    [request] = await webhook_server.wait_for(1, timeout_s=30)
    assert "X-Warroom-Signature" not in request["headers"]


# --- (e) no secret in any log line -------------------------------------------------------------


async def test_no_secret_appears_in_any_log_line(
    start_worker: Callable[..., RunningWorker], tmp_path: Path
) -> None:
    secrets = {
        "webhook_secret": "whsec-c0ffee-5e3a9d1b",
        "smtp_password": "smtp-pw-7d2e6f0a4b",
        "sasl_password": "sasl-pw-1b9c8e7f55",
    }
    hook = RawWebhookServer(status=500)  # every webhook delivery fails: retries get logged
    await hook.start()
    smtp_port = free_port()  # nothing listens: email delivery fails too
    try:
        worker = start_worker(
            signed_catalog(hook.url, smtp_port),
            smtp_host="127.0.0.1", smtp_port=str(smtp_port), smtp_username="warroom",
            delivery_attempts=2, log_level="debug", **secrets,
        )  # fmt: skip
        secrets["api_token"] = worker.token
        url = worker.base_url
        # Authentication failures, with and without a token-like value.
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
            assert (await call(url, "POST", "/api/silences", {}, headers))[0] == 401
        assert (await call(url, "POST", "/api/alerts/pagerduty",
                           {**trigger(), "routing_key": "nope"}))[0] == 401  # fmt: skip
        # Bad requests, then a page that fails on both channels and is dead-lettered.
        assert (await call(url, "POST", "/api/silences", {"matchers": 1}, worker.headers()))[
            0
        ] == 400
        status, _ = await call(url, "POST", "/api/alerts/pagerduty", trigger(), worker.headers())
        assert status == 202
        await hook.wait_for(2, timeout_s=30)
        assert all(r["headers"].get("X-Warroom-Signature") for r in hook.requests)

        def emailed(receipts: list[Any]) -> bool:
            return any(r["channel"] == "email" and r["outcome"] != "delivered" for r in receipts)

        await consume(worker.bootstrap, worker.topics.receipts, emailed, timeout_s=30)

        async def both_dead_lettered() -> bool | None:
            # The last attempt on each channel is logged with its dead letter.
            return True if worker.log_text().count("at deliver: undeliverable") >= 2 else None

        await eventually(both_dead_lettered, 30, "both channels' pages to be dead-lettered")
        worker.stop()
        logs = {"worker": worker.log_text()}
    finally:
        await hook.stop()

    # Bad config values, with every secret in the environment: the worker refuses to start.
    bad_values = {
        "partitions": {"WARROOM_PARTITIONS": "many"},
        "sasl": {"WARROOM_SECURITY_PROTOCOL": "SASL_SSL", "WARROOM_SASL_USERNAME": ""},
        "smtp_port": {"WARROOM_SMTP_PORT": secrets["smtp_password"]},
        "catalog": {"WARROOM_CATALOG_PATH": str(tmp_path / "catalog.yaml")},
    }
    (tmp_path / "catalog.yaml").write_text("teams: {t: {members: [ghost]}}\n")
    env = {**worker.env, **{f"WARROOM_{k.upper()}": v for k, v in secrets.items()}}
    for name, values in bad_values.items():
        run = subprocess.run(
            [sys.executable, "-m", "streams.cli", "worker"],
            env={**env, **values}, capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        output = (run.stdout + run.stderr).decode(errors="replace")
        assert run.returncode != 0, (name, output[-2000:])
        assert "Traceback" not in output, (name, output[-2000:])
        logs[f"config {name}"] = output
    assert "WARROOM_PARTITIONS" in logs["config partitions"]
    assert "sasl_username" in logs["config sasl"]
    assert "WARROOM_SMTP_PORT" in logs["config smtp_port"]
    assert "ghost" in logs["config catalog"]

    assert "HTTP API on" in logs["worker"] and "dead-lettered" in logs["worker"]  # a real log
    leaks = [
        (source, key, line)
        for source, text in logs.items()
        for line in text.splitlines()
        for key, secret in secrets.items()
        if secret in line
    ]
    assert not leaks, leaks  # not even a secret given by mistake as another field's value
