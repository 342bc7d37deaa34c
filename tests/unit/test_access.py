"""Roles, personal token digests, signed action links and Slack's request signature: the pure
checks behind the people-facing endpoints."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from responders.access import allows, link_problem, link_signature, slack_problem, slack_signature
from schemas.auth import TokenRequest
from schemas.catalog import Role
from schemas.common import format_errors

# Slack's own example ("Verifying requests from Slack", api.slack.com/authentication).
SLACK_SECRET = b"8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TS = "1531420618"
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
    b"G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"
    b"collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700"
    b"885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2"
    b"c447fce8b6703c"
)
SLACK_SIG = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_slack_signature_matches_slacks_published_example() -> None:
    assert slack_signature(SLACK_SECRET, SLACK_TS, SLACK_BODY) == SLACK_SIG
    assert slack_problem(SLACK_SECRET, SLACK_TS, SLACK_SIG, SLACK_BODY, now_s=1531420618) is None


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "now_s", "problem"),
    [
        (SLACK_TS, SLACK_SIG, SLACK_BODY + b"x", 1531420618, "does not match the body"),
        (SLACK_TS, "v0=" + "0" * 64, SLACK_BODY, 1531420618, "does not match the body"),
        (SLACK_TS, SLACK_SIG, SLACK_BODY, 1531420618 + 301, "301 s away from now"),
        (SLACK_TS, SLACK_SIG, SLACK_BODY, 1531420618 - 301, "301 s away from now"),
        (None, SLACK_SIG, SLACK_BODY, 1531420618, "are required"),
        (SLACK_TS, None, SLACK_BODY, 1531420618, "are required"),
        ("soon", SLACK_SIG, SLACK_BODY, 1531420618, "not a number"),
        (SLACK_TS, "v0=\u00e9", SLACK_BODY, 1531420618, "does not match the body"),
    ],
    ids=["body-changed", "wrong-signature", "stale", "from-the-future", "no-timestamp",
         "no-signature", "timestamp-not-a-number", "non-ascii-signature"],
)  # fmt: skip
def test_slack_requests_signed_otherwise_or_stale_are_refused(
    timestamp: str | None, signature: str | None, body: bytes, now_s: float, problem: str
) -> None:
    said = slack_problem(SLACK_SECRET, timestamp, signature, body, now_s)
    assert said is not None and problem in said


KEY = b"0123456789abcdef0123456789abcdef"
SIG = link_signature(KEY, "inc-1", "acknowledge", "ann", 2_000)


@pytest.mark.parametrize(
    ("incident", "action", "person", "expires", "sig", "now_s", "problem"),
    [
        ("inc-1", "acknowledge", "ann", 2_000, SIG, 1_999, None),
        ("inc-2", "acknowledge", "ann", 2_000, SIG, 1_000, "signature does not match"),
        ("inc-1", "resolve", "ann", 2_000, SIG, 1_000, "signature does not match"),
        ("inc-1", "acknowledge", "bob", 2_000, SIG, 1_000, "signature does not match"),
        ("inc-1", "acknowledge", "ann", 9_000, SIG, 1_000, "signature does not match"),
        ("inc-1", "acknowledge", "ann", 2_000, SIG[:-1] + "0", 1_000, "signature does not match"),
        ("inc-1", "acknowledge", "ann", 2_000, SIG, 2_000, "expired at 1970-01-01T00:33:20Z"),
        ("inc-1", "mitigate", "ann", 2_000, SIG, 1_000, "acknowledge or resolve"),
        ("inc-1", "acknowledge", "ann", 2_000, "\u00e9" * 64, 1_000, "signature does not match"),
    ],
    ids=["valid", "other-incident", "other-action", "other-person", "later-expiry",
         "changed-signature", "expired", "not-a-link-action", "non-ascii-signature"],
)  # fmt: skip
def test_action_links_act_only_as_signed_and_until_they_expire(
    incident: str, action: str, person: str, expires: int, sig: str, now_s: float,
    problem: str | None,
) -> None:  # fmt: skip
    said = link_problem(KEY, incident, action, person, expires, sig, now_s, ttl_s=86_400)
    assert (said is None) if problem is None else (said is not None and problem in said)


def test_a_link_signed_with_another_key_does_not_act() -> None:
    assert (
        link_problem(b"x" * 32, "inc-1", "acknowledge", "ann", 2_000, SIG, 1_000, 86_400)
        is not None
    )


@pytest.mark.parametrize(
    ("role", "needed", "allowed"),
    [("viewer", "viewer", True), ("viewer", "responder", False), ("responder", "responder", True),
     ("responder", "admin", False), ("admin", "responder", True), ("admin", "admin", True)],
    ids=lambda v: str(v),
)  # fmt: skip
def test_roles_are_ordered_viewer_responder_admin(role: Role, needed: Role, allowed: bool) -> None:
    assert allows(role, needed) is allowed


def test_a_slack_member_is_one_person_and_roles_are_named() -> None:
    from pydantic import ValidationError

    from schemas import Catalog

    console = [{"channel": "console"}]
    with pytest.raises(ValidationError) as twice:
        Catalog.model_validate({"people": {
            "ann": {"contacts": console, "slack_user_id": "U0ANN"},
            "bob": {"contacts": console, "slack_user_id": "U0ANN"},
        }})  # fmt: skip
    assert "people.bob.slack_user_id" in str(twice.value)
    assert "already the Slack member of 'ann'" in str(twice.value)
    with pytest.raises(ValidationError) as role:
        Catalog.model_validate({"people": {"ann": {"contacts": console, "role": "owner"}}})
    assert "people.ann.role" in str(role.value)
    people = Catalog.model_validate({"people": {"ann": {"contacts": console}}}).people
    assert people["ann"].role == "responder" and people["ann"].slack_user_id is None


@pytest.mark.parametrize(
    "body",
    [{"person": "ann", "role": "admin"}, {"person": "ann", "expires": "2099-01-01T00:00:00Z"}],
    ids=["role", "expiry"],
)
def test_a_token_request_with_a_field_it_does_not_have_is_refused_naming_it(
    body: dict[str, str],
) -> None:
    # A token has the role the catalog gives its person and no expiry: a request that asks
    # for either must not silently get a token without it.
    with pytest.raises(ValidationError) as caught:
        TokenRequest.model_validate(body)
    [field] = [k for k in body if k != "person"]
    assert format_errors(caught.value).startswith(f"{field}: "), caught.value


def test_a_token_request_s_actor_is_ignored_as_every_body_s() -> None:
    assert TokenRequest.model_validate({"person": "ann", "actor": "mallory"}).person == "ann"
