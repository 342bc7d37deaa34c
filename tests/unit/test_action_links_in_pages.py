"""Pages carry their recipient's signed acknowledge and resolve links (webhook body, email,
Slack) when a link key is set, and Slack pages carry buttons when a signing secret is; notices
and digests carry neither, having nothing to act on."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from responders.access import link_problem
from schemas import Channel, Page, Severity
from streams.notifiers.email import email_message
from streams.notifiers.links import ActionLinks
from streams.notifiers.slack import slack_message
from streams.notifiers.webhook import webhook_body

KEY = b"0123456789abcdef0123456789abcdef"
LINKS = ActionLinks("https://warroom.example", KEY, 3600.0)
MADE = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def page(kind: str = "page", channel: Channel = Channel.WEBHOOK) -> Page:
    return Page(dedup_key="inc-1/0/ann/webhook", incident_id="inc-1", routing_key="checkout",
                step=0, recipient="ann", channel=channel, address="ann@example.com",
                severity=Severity.SEV2, subject="[SEV2] Card payments fail", body="Down.",
                created_at=MADE, kind=kind)  # fmt: skip


def test_the_webhook_body_links_act_as_the_recipient_until_an_hour_after_the_page() -> None:
    actions = json.loads(webhook_body(page(), LINKS))["actions"]
    assert set(actions) == {"acknowledge", "resolve"}
    for action, url in actions.items():
        parts = urlsplit(url)
        assert parts.path == f"/act/inc-1/{action}"
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        expires = int(q["expires"])
        assert q["person"] == "ann" and expires == int(MADE.timestamp()) + 3600
        assert (
            link_problem(KEY, "inc-1", action, "ann", expires, q["sig"], expires - 1, 86_400)
            is None
        )


def test_without_a_key_the_webhook_body_is_the_page_as_before() -> None:
    assert webhook_body(page(), None) == page().model_dump_json().encode()


@pytest.mark.parametrize("kind", ["notice", "digest"])
def test_notices_and_digests_carry_no_action_links(kind: str) -> None:
    assert "actions" not in json.loads(webhook_body(page(kind), LINKS))
    assert not any(
        b.get("type") == "actions"
        for b in slack_message(page(kind), None, LINKS, buttons=True)["blocks"]
    )


def test_email_shows_the_links_in_text_and_html() -> None:
    message = email_message(page(channel=Channel.EMAIL), "warroom@example.com", None, LINKS)
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    link = "Acknowledge: https://warroom.example/act/inc-1/acknowledge?person=ann"
    assert link in plain.get_content()
    assert ">Resolve</a>" in html.get_content()


def test_slack_buttons_name_the_action_and_the_incident() -> None:
    blocks = slack_message(page(channel=Channel.SLACK), None, LINKS, buttons=True)["blocks"]
    [buttons] = [b for b in blocks if b["type"] == "actions"]
    assert [(e["action_id"], e["value"]) for e in buttons["elements"]] == [
        ("acknowledge", "inc-1"), ("resolve", "inc-1"),
    ]  # fmt: skip
    plain = slack_message(page(channel=Channel.SLACK), None, None)["blocks"]
    assert not any(b["type"] == "actions" for b in plain)
