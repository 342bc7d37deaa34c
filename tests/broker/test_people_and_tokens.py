"""People act as themselves: personal tokens with roles, signed action links in pages, Slack
buttons and responders paged by hand, each recorded on the timeline under the authenticated
person and never under a name a request body claims."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest

from responders.access import link_signature
from tests.harness import (
    Api,
    RunningWorker,
    WebhookServer,
    eventually,
    read_records,
    same_group,
)

pytestmark = pytest.mark.broker

LINK_KEY = "k3Yq9vLr2mT8xWb1NcZ5pHd7sFg0aJuE"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def catalog(hook_url: str) -> dict[str, Any]:
    hook = [{"channel": "webhook", "address": hook_url}]
    return {
        "services": {"checkout": {"team": "payments", "tier": 2}},
        "teams": {
            "payments": {"members": ["ann"], "escalation": [{"targets": ["ann"]}]},
            "dba": {"members": ["bob"]},
        },
        "people": {
            "ann": {"contacts": hook, "slack_user_id": "U0ANN"},
            "bob": {"contacts": hook},
            "vic": {"contacts": hook, "role": "viewer", "slack_user_id": "U0VIC"},
            "root": {"contacts": [{"channel": "console"}], "role": "admin"},
        },
    }


async def call(
    worker: RunningWorker,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
) -> tuple[int, Any]:
    """One request; the answer as JSON where it is JSON, else as text."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, worker.base_url + path, json=body, data=data, headers=sent,
            allow_redirects=False,
        ) as response,
    ):  # fmt: skip
        text = await response.text()
        if response.content_type == "application/json":
            return response.status, json.loads(text)
        return response.status, text


def warroom(worker: RunningWorker, *argv: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env["WARROOM_TOKEN"] = worker.token
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *argv, "--api", worker.base_url],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout.strip(), done.stderr.strip()


async def declare(worker: RunningWorker, token: str | None = None) -> str:
    code, answer = await call(
        worker, "POST", "/api/incidents", token or worker.token,
        {"service": "checkout", "title": "EU card payments fail", "actor": "mallory"},
    )  # fmt: skip
    assert code == 202, answer
    incident_id = str(answer["incident_id"])

    async def opened() -> bool | None:
        return (await Api(worker).get(f"/api/incidents/{incident_id}"))[0] == 200 or None

    await eventually(opened, 30, "the declared incident")
    return incident_id


async def reaches(worker: RunningWorker, incident_id: str, status: str) -> None:
    async def probe() -> bool | None:
        _, incident = await Api(worker).get(f"/api/incidents/{incident_id}")
        return incident.get("status") == status or None

    await eventually(probe, 20, f"the incident {status}")


async def timeline_with(
    worker: RunningWorker, incident_id: str, kind: str, count: int = 1
) -> list[dict[str, Any]]:
    async def reached() -> list[dict[str, Any]] | None:
        _, found = await Api(worker).get(f"/api/incidents/{incident_id}/timeline")
        events = found.get("events") or []
        return events if sum(e["kind"] == kind for e in events) >= count else None

    return await eventually(reached, 20, f"{count} {kind} event(s)")


async def test_tokens_roles_and_revocation_record_the_authenticated_person(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    worker = start_worker(catalog(webhook_server.url))
    # Created with the CLI (the shared token is an admin); printed once, kept only hashed.
    code, ann_token, err = warroom(worker, "token", "create", "ann")
    assert code == 0 and ann_token.startswith("wrp_") and len(ann_token) > 40, err
    code, vic = await call(worker, "POST", "/api/tokens", worker.token, {"person": "vic"})
    assert code == 201 and vic["person"] == "vic", vic
    vic_token = vic["token"]
    code, listed = await call(worker, "GET", "/api/tokens", worker.token)
    assert {t["person"] for t in listed["tokens"]} == {"ann", "vic"}
    assert ann_token not in json.dumps(listed) and vic_token not in json.dumps(listed)
    # A token for someone the catalog does not know, or made by a non-admin, is refused.
    code, said = await call(worker, "POST", "/api/tokens", worker.token, {"person": "eve"})
    assert code == 404 and "eve" in said["error"]
    code, said = await call(worker, "POST", "/api/tokens", ann_token, {"person": "ann"})
    assert code == 403 and said["error"] == "ann is a responder; this needs the admin role"

    # Tokens are on the topic, not in the worker's memory: they survive a restart.
    worker.restart()
    code, me = await call(worker, "GET", "/api/whoami", ann_token)
    assert code == 200 and me == {"actor": "ann", "role": "responder", "person": "ann"}

    incident_id = await declare(worker, ann_token)
    path = f"/api/incidents/{incident_id}"
    # A viewer reads but cannot act.
    code, said = await call(worker, "POST", f"{path}/acknowledge", vic_token)
    assert code == 403 and said["error"] == "vic is a viewer; this needs the responder role"
    assert (await call(worker, "GET", path, vic_token))[0] == 200
    # A body's actor is not who acts: the token's person is.
    code, accepted = await call(
        worker, "POST", f"{path}/acknowledge", ann_token, {"actor": "mallory"}
    )
    assert code == 202 and accepted["actor"] == "ann", accepted
    # The shared token acts as automation, under the name its header gives.
    code, noted = await call(worker, "POST", f"{path}/notes", worker.token,
                             {"text": "rolling back", "actor": "mallory"},
                             headers={"X-Warroom-Actor": "deploy-bot"})  # fmt: skip
    assert code == 202 and noted["actor"] == "deploy-bot", noted
    code, said = await call(worker, "POST", f"{path}/notes", worker.token, {"text": "x"},
                            headers={"X-Warroom-Actor": "automation"})  # fmt: skip
    assert code == 400 and "reserved" in said["error"]

    # Paging bob's team in now: recorded as ann adding the dba team, and bob is paged.
    code, added = await call(worker, "POST", f"{path}/responders", ann_token,
                             {"team": "dba", "text": "the database is slow"})  # fmt: skip
    assert code == 202 and added["actor"] == "ann", added
    events = await timeline_with(worker, incident_id, "responder_added")
    [event] = [e for e in events if e["kind"] == "responder_added"]
    assert event["actor"] == "ann" and event["data"]["target"] == {"team": "dba"}
    assert event["data"]["recipients"] == ["bob"]
    pages = await webhook_server.wait_for(2, timeout_s=30)
    assert {p["json"]["recipient"] for p in pages} == {"ann", "bob"}
    code, said = await call(worker, "POST", f"{path}/responders", ann_token, {"team": "nope"})
    assert code == 409 and said["error"] == "team: 'nope' is not in the catalog"
    code, said = await call(worker, "POST", f"{path}/responders", ann_token,
                            {"team": "dba", "person": "bob"})  # fmt: skip
    assert code == 400 and "exactly one" in said["error"]

    # Revoked: every one of ann's tokens answers 401 from then on.
    code, out, err = warroom(worker, "token", "revoke", "ann")
    assert code == 0 and out == "revoked 1 token(s) of ann", err
    code, said = await call(worker, "POST", f"{path}/notes", ann_token, {"text": "x"})
    assert code == 401 and said["error"] == "invalid token"
    assert (await call(worker, "GET", "/api/whoami", vic_token))[0] == 200

    # The timeline names authenticated people only.
    events = await timeline_with(worker, incident_id, "note")
    by_people = [e for e in events if e["kind"] in ("acknowledged", "note", "responder_added")]
    assert [(e["kind"], e["actor"]) for e in by_people] == [
        ("acknowledged", "ann"), ("note", "deploy-bot"), ("responder_added", "ann"),
    ]  # fmt: skip
    assert "mallory" not in json.dumps(events)


async def test_a_token_made_on_one_worker_acts_on_another_until_revoked_there(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer, tmp_path: Path
) -> None:
    a = start_worker(catalog(webhook_server.url))
    b = same_group(a, tmp_path, "b")
    b.start()
    try:
        code, made = await call(a, "POST", "/api/tokens", a.token, {"person": "ann"})
        assert code == 201

        async def known_on(worker: RunningWorker, status: int) -> bool | None:
            return (await call(worker, "GET", "/api/whoami", made["token"]))[0] == status or None

        await eventually(lambda: known_on(b, 200), 20, "worker b to know ann's token")
        code, said = await call(b, "DELETE", "/api/tokens/ann", b.token)
        assert code == 200 and said["revoked"] == [made["token_id"]]
        assert (await call(b, "GET", "/api/whoami", made["token"]))[0] == 401
        await eventually(lambda: known_on(a, 401), 20, "worker a to see the revocation")
    finally:
        b.stop()


async def test_private_reads_need_a_token_but_probes_stay_open(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    worker = start_worker(catalog(webhook_server.url), private_reads="true")
    assert (await call(worker, "GET", "/healthz"))[0] == 200
    code, said = await call(worker, "GET", "/api/incidents")
    assert code == 401 and said["error"].startswith("missing bearer token")
    assert (await call(worker, "GET", "/api/openapi.json"))[0] == 401
    code, vic = await call(worker, "POST", "/api/tokens", worker.token, {"person": "vic"})
    assert code == 201
    assert (await call(worker, "GET", "/api/incidents", vic["token"]))[0] == 200
    assert (await call(worker, "GET", "/api/incidents", "wrp_nobody"))[0] == 401


def _link_parts(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}


async def test_a_signed_link_acknowledges_once_as_its_person(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    worker = start_worker(catalog(webhook_server.url), action_link_key=LINK_KEY)
    incident_id = await declare(worker)
    [page] = await webhook_server.wait_for(1, timeout_s=30)
    assert page["json"]["recipient"] == "ann"
    actions = page["json"]["actions"]
    ack_url, resolve_url = actions["acknowledge"], actions["resolve"]
    path, query = _link_parts(ack_url)
    assert path == f"/act/{incident_id}/acknowledge" and query["person"] == "ann"
    assert ack_url.startswith(worker.base_url)

    # Opening the link (as a mail scanner would) only shows a confirmation.
    code, shown = await call(worker, "GET", f"{path}?{urlencode(query)}")
    assert code == 200 and 'method="post"' in shown and "as ann" in shown
    _, incident = await Api(worker).get(f"/api/incidents/{incident_id}")
    assert incident["status"] == "triggered"

    # Tampered: another person, a later expiry, another action, another signature.
    for changed, status in (
        ({**query, "person": "bob"}, 403),
        ({**query, "expires": str(int(query["expires"]) + 3600)}, 403),
        ({**query, "sig": query["sig"][:-2] + "00"}, 403),
        ({k: v for k, v in query.items() if k != "sig"}, 400),
    ):
        code, said = await call(worker, "POST", f"{path}?{urlencode(changed)}")
        assert code == status and "error" in said, (changed, said)
    code, said = await call(worker, "POST", f"/act/{incident_id}/resolve?{urlencode(query)}")
    assert code == 403 and "signature" in said["error"]
    # Expired: correctly signed with the deployment's key, but its time has passed.
    past = int(time.time()) - 60
    expired = {
        "person": "ann",
        "expires": str(past),
        "sig": link_signature(LINK_KEY.encode(), incident_id, "acknowledge", "ann", past),
    }
    code, said = await call(worker, "POST", f"{path}?{urlencode(expired)}")
    assert code == 410 and said["error"].startswith("the link expired at")

    # The real link acknowledges, as ann; a second use changes nothing and says so.
    code, done = await call(worker, "POST", f"{path}?{urlencode(query)}")
    assert code == 200 and f"Incident {incident_id} acknowledged by ann." in done
    await reaches(worker, incident_id, "acknowledged")
    code, again = await call(worker, "POST", f"{path}?{urlencode(query)}")
    assert code == 200 and "already acknowledged; nothing changed" in again
    path, query = _link_parts(resolve_url)
    code, done = await call(worker, "POST", f"{path}?{urlencode(query)}")
    assert code == 200 and f"Incident {incident_id} resolved by ann." in done
    events = await timeline_with(worker, incident_id, "resolved")
    acted = [(e["kind"], e["actor"]) for e in events if e["kind"] in ("acknowledged", "resolved")]
    assert acted == [("acknowledged", "ann"), ("resolved", "ann")]


async def test_a_worker_killed_right_after_a_link_acts_records_the_acknowledgement_once(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    worker = start_worker(catalog(webhook_server.url), action_link_key=LINK_KEY)
    incident_id = await declare(worker)
    [page] = await webhook_server.wait_for(1, timeout_s=30)
    path, query = _link_parts(page["json"]["actions"]["acknowledge"])
    code, done = await call(worker, "POST", f"{path}?{urlencode(query)}")
    assert code == 200 and f"Incident {incident_id} acknowledged by ann." in done
    worker.kill()  # at once: the command is on the broker, maybe not yet applied
    worker.start()
    await reaches(worker, incident_id, "acknowledged")
    # The person presses again (the page looked unanswered): nothing more is written.
    code, again = await call(worker, "POST", f"{path}?{urlencode(query)}")
    assert code == 200 and "already acknowledged; nothing changed" in again
    worker.kill()
    worker.start()
    await reaches(worker, incident_id, "acknowledged")
    code, noted = await call(worker, "POST", f"/api/incidents/{incident_id}/notes", worker.token,
                             {"text": "after the kills"})  # fmt: skip
    assert code == 202, noted
    events = await timeline_with(worker, incident_id, "note")
    assert [e["actor"] for e in events if e["kind"] == "acknowledged"] == ["ann"]
    acks = {
        e["id"]
        for _, raw in await read_records(worker.bootstrap, worker.topics.events)
        if raw is not None
        for e in [json.loads(raw)]
        if e.get("incident_id") == incident_id and e.get("kind") == "acknowledged"
    }
    assert len(acks) == 1, acks


def slack_request(
    user: str, action: str, incident_id: str, ts: int, secret: str
) -> tuple[bytes, dict[str, str]]:
    payload = {"type": "block_actions", "user": {"id": user},
               "actions": [{"action_id": action, "value": incident_id}]}  # fmt: skip
    body = urlencode({"payload": json.dumps(payload)}).encode()
    base = f"v0:{ts}:".encode() + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    headers = {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": signature,
               "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
    return body, headers


async def test_slack_buttons_act_as_the_person_who_pressed_them(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    worker = start_worker(catalog(webhook_server.url), slack_signing_secret=SLACK_SECRET)
    incident_id = await declare(worker)
    route = "/api/slack/interactivity"
    now = int(time.time())

    body, headers = slack_request("U0ANN", "acknowledge", incident_id, now, "not-the-secret")
    code, said = await call(worker, "POST", route, data=body, headers=headers)
    assert code == 401 and said["error"] == "X-Slack-Signature does not match the body"
    body, headers = slack_request("U0ANN", "acknowledge", incident_id, now - 400, SLACK_SECRET)
    code, said = await call(worker, "POST", route, data=body, headers=headers)
    assert code == 401 and "X-Slack-Request-Timestamp" in said["error"]
    body, headers = slack_request("U0EVE", "acknowledge", incident_id, now, SLACK_SECRET)
    code, said = await call(worker, "POST", route, data=body, headers=headers)
    assert code == 403 and "U0EVE" in said["error"]
    body, headers = slack_request("U0VIC", "acknowledge", incident_id, now, SLACK_SECRET)
    code, said = await call(worker, "POST", route, data=body, headers=headers)
    assert code == 403 and "viewer" in said["error"]
    _, incident = await Api(worker).get(f"/api/incidents/{incident_id}")
    assert incident["status"] == "triggered"

    body, headers = slack_request("U0ANN", "acknowledge", incident_id, now, SLACK_SECRET)
    code, said = await call(worker, "POST", route, data=body, headers=headers)
    assert code == 200 and said["text"] == f"Incident {incident_id}: acknowledge recorded as ann."
    events = await timeline_with(worker, incident_id, "acknowledged")
    [ack] = [e for e in events if e["kind"] == "acknowledged"]
    assert ack["actor"] == "ann"
    await reaches(worker, incident_id, "acknowledged")
    # A second press (a new request) changes nothing and says why.
    body, headers = slack_request("U0ANN", "acknowledge", incident_id, now + 1, SLACK_SECRET)
    code, said = await call(worker, "POST", route, data=body, headers=headers)
    assert code == 200
    assert said["text"] == f"Nothing changed: {incident_id} is already acknowledged."
