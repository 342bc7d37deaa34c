"""The review's "changes before impact": listed, and no change's text or link adds markup."""

from __future__ import annotations

import re
from datetime import timedelta

from hypothesis import given, settings

from responders.review import build_review
from schemas.changes import Change
from tests.unit.test_review import MARKDOWNISH, ORDINARY_TAGS, _tags, render_html, timeline


def change(summary: str, href: str = "https://ci.example.com/1", text: str = "build") -> Change:
    opened = timeline()[0]
    return Change(
        id="chg-1", at=opened.at - timedelta(minutes=12), service="api", summary=summary,
        source="ci", links=[{"href": href, "text": text}],
    )  # fmt: skip


def test_the_changes_before_impact_are_listed() -> None:
    markdown = build_review(timeline(), changes=[change("deploy 1.4.3")]).markdown
    section = markdown.split("## Changes in the hour before impact\n", 1)[1].split("\n## ")[0]
    assert "| api | deploy 1.4.3 | ci | [build](https://ci.example.com/1) |" in section
    none = build_review(timeline(), changes=[]).markdown
    assert "None recorded for `api` or what it depends on." in none
    assert "## Changes" not in build_review(timeline()).markdown  # not asked for


@given(text=MARKDOWNISH)
@settings(max_examples=200, deadline=None)
def test_no_change_adds_markup(text: str) -> None:
    found = change(text or "x", href=f"https://ci.example.com/{text}", text=text)
    html_text = render_html(build_review(timeline(), changes=[found]).markdown)
    assert _tags(html_text) <= ORDINARY_TAGS | {"em", "strong", "a"}, _tags(html_text)
    for href in re.findall(r'href="([^"]*)"', html_text):
        assert href.startswith("https://ci.example.com/"), href


def test_a_link_that_is_not_http_is_not_followed() -> None:
    markdown = build_review(timeline(), changes=[change("x", href="javascript:alert(1)")]).markdown
    assert "javascript:" not in markdown
