"""Default token masks: every class of variable value becomes ``<*>``, constants stay."""

from __future__ import annotations

import pytest

from detectors.logs import Masker, MaskRule, mask_token

TOKENS = [
    ("word", "started", "started"),
    ("integer", "6725", "<*>"),
    ("negative", "-17", "<*>"),
    ("float", "0.2477829", "<*>"),
    ("hex", "0x7fed806eb5d", "<*>"),
    ("ipv4", "10.251.73.220", "<*>"),
    ("ip-port", "10.251.73.220:50010", "<*>"),
    ("ip-in-brackets", "[218.188.2.4]", "[<*>]"),
    ("uuid", "b9000564-fe1a-409b-b8cc-1e88b294cd1d", "<*>"),
    ("block-id", "blk_-6952295868487656571", "<*>"),
    ("app-id", "appattempt_1445144423722_0020_000001", "<*>"),
    ("path", "/var/log/messages", "<*>"),
    ("windows-path", "C:\\Windows\\winsxs\\cbscore.dll", "<*>"),
    ("url", "http://example.org/a", "<*>"),
    ("host", "massive.merukuru.org", "<*>"),
    ("file", "chrome.exe", "<*>"),
    ("duration", "12ms", "<*>"),
    ("size", "1.5GB", "<*>"),
    ("key-value", "uid=0", "uid=<*>"),
    ("key-host", "rhost=a.b.example.net", "rhost=<*>"),
    ("key-word", "tty=NODEVssh", "tty=NODEVssh"),
    ("bracketed-key-value", "(HWID=1973)", "(HWID=<*>)"),
    ("empty-parens", "()", "(<*>)"),
    ("dot-leader", "dcbf.........0", "dcbf.........<*>"),
    ("trailing-colon", "src:", "src:"),
    ("sentence-end", "done.", "done."),
    ("java-class", "org.apache.hadoop.Task", "org.apache.hadoop.Task"),
    ("stack-frame", "com.acme.pay.Client.charge(Client.java:212)", "<*>"),
    ("process-id", "sshd[50596]:", "sshd[<*>]:"),
    ("json-word", '{"id":', '{"id":'),
]


@pytest.mark.parametrize(("token", "expected"), [t[1:] for t in TOKENS], ids=[t[0] for t in TOKENS])
def test_mask_token(token: str, expected: str) -> None:
    assert mask_token(token) == expected


MESSAGES = [
    (
        "wildcards-collapse",
        "connection from 1.2.3.4 at Fri Jun 17 07:07:00 2005",
        ("connection", "from", "<*>", "at", "<*>"),
    ),
    ("month-is-a-date-word", "Scheduled for May 3", ("Scheduled", "for", "<*>")),
    ("whitespace", "  a\tb   c ", ("a", "b", "c")),
    ("empty", "", ()),
    (
        # A quoted string is one token, its words masked inside it.
        "quoted-string-is-one-token",
        'reason="not found for key 12" attempt=3',
        ('reason="not found for key <*>"', "attempt=<*>"),
    ),
    (
        "escaped-quotes-stay-inside",
        'msg="StartContainer for \\"9f2c1d\\" returns successfully" id=3',
        ('msg="StartContainer for \\"<*>\\" returns successfully"', "id=<*>"),
    ),
    ("unbalanced-quote-splits-as-usual", 'he said "hi there', ("he", "said", '"hi', "there")),
    (
        "json-fragment-is-one-value",
        'loaded config {"orders": 12, "users": {"max": 3}} from disk',
        ("loaded", "config", "<*>", "from", "disk"),
    ),
    (
        "request-and-agent",
        '1.2.3.4 - - "GET /a/b HTTP/1.1" 200 "curl/8.4.0"',
        ("<*>", "-", "-", '"GET <*>"', "<*>", '"<*>"'),
    ),
]


@pytest.mark.parametrize(
    ("message", "expected"), [m[1:] for m in MESSAGES], ids=[m[0] for m in MESSAGES]
)
def test_masker_tokens(message: str, expected: tuple[str, ...]) -> None:
    assert Masker().tokens(message) == expected


def test_extra_mask_rule_applies_before_tokens() -> None:
    masker = Masker([MaskRule(r"user \w+", "user <*>")])
    assert masker.tokens("login by user alice") == ("login", "by", "user", "<*>")


@pytest.mark.parametrize(
    "tokens",
    [
        ["22:24:30", "04:19:45.123", "12:00"],
        ["sshd[50596]:", "sshd[7]:"],
        ["uid=0", "uid=1000", "(HWID=1973)", "(HWID=2)"],
        ["10.0.228.226:8080", "192.168.1.9"],
        ["dcbf.........0", "dcbf.........9"],
        ["x86_64", "ip6tables", "log4j"],
    ],
    ids=["times", "process-ids", "key-values", "addresses", "dot-leaders", "names-with-digits"],
)
def test_tokens_of_one_shape_share_the_cache_and_mask_as_alone(tokens: list[str]) -> None:
    masker = Masker()
    assert masker.tokens(" ".join(tokens)) == Masker().tokens(" ".join(tokens))
    for token in tokens:
        assert masker.tokens(token) == Masker([]).tokens(token)
        assert masker.tokens(token) == (mask_token(token),)
