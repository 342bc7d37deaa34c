"""The post-incident review, rendered from a hand-built timeline."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from responders.lifecycle import on_detection
from responders.review import build_review, follow_ups, render_review
from schemas import Catalog, Detection, IncidentEvent, IncidentEventKind
from schemas.timeline import payload_for

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"
CATALOG = Catalog.model_validate(
    {
        "services": {"api": {"team": "core", "tier": 1}},
        "teams": {"core": {"escalation": [{"targets": ["alice"]}]}},
        "people": {"alice": {"contacts": [{"channel": "console"}]}},
    }
)
RECENT = [[(T0 + timedelta(seconds=s)).timestamp(), v] for s, v in [(-6, 100.0), (-4, 101.0)]]
RECENT += [[(T0 + timedelta(seconds=s)).timestamp(), v] for s, v in [(-2, 99.0), (0, 400.0)]]
RECENT += [[(T0 + timedelta(seconds=4)).timestamp(), 420.0]]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def timeline(resolved: bool = True, why: str | None = None) -> list[IncidentEvent]:
    """Impact at T0, detected +4s, opened and paged +5s, acknowledged +65s, restored +185s,
    resolved +305s; a later detection (saying ``why``), a role, a runbook task and two
    follow-up notes."""
    detection = Detection(
        id="d1",
        ts=at(4),
        service="api",
        signal="latency_ms",
        detector="median_mad",
        score=0.999,
        severity="error",
        impact_started_at=T0,
        context={"series": "api/latency_ms", "value": 420.0, "recent": RECENT},
    )
    opening = on_detection(None, detection, CATALOG, now=at(5))
    assert opening.incident is not None
    inc = opening.incident
    events = list(opening.events)

    def add(kind: str, seconds: float, actor: str, **data: Any) -> None:
        seq = len(events) + 1
        events.append(
            IncidentEvent(
                id=f"{inc.id}:{seq}",
                incident_id=inc.id,
                routing_key=inc.routing_key,
                seq=seq,
                kind=IncidentEventKind(kind),
                at=at(seconds),
                actor=actor,
                cause=f"cmd-{seq}" if actor != "warroom" else None,
                data=data,
            )
        )

    add(
        "runbook_attached", 5, "warroom", runbook="api", title="api",
        tasks=[{"id": "rollback", "title": "roll back the deploy", "phase": "mitigate",
                "owner_role": "responder", "kind": "manual"}],
    )  # fmt: skip
    add(
        "detection_attached", 20, "warroom", detection_id="d2", signal="latency_ms",
        detector="median_mad", score=0.98, detected_at=at(20).isoformat(),
        context={"series": "api/latency_ms", "value": 380.0,
                 "recent": [[at(12).timestamp(), 390.0], [at(20).timestamp(), 380.0]],
                 **({"why": why} if why else {})},
    )  # fmt: skip
    add("acknowledged", 65, "ann", text="looking")
    add("role_assigned", 66, "ann", role="commander", person="ann", previous=None)
    add("role_assigned", 80, "ann", role="responder", person="bob", previous=None)
    add("note", 90, "ann", text="follow-up: add a canary stage for api")
    add(
        "task_done", 150, "bob", task_id="rollback", task="rollback", phase="mitigate",
        outcome="done", duration_s=90,
    )  # fmt: skip
    add("note", 160, "bob", text="TODO write the | capacity plan")
    add("note", 170, "bob", text="error rate is back to normal")
    add("mitigated", 185, "bob", text="rolled back")
    if resolved:
        add("resolved", 305, "ann", text="fixed")
    return events


def rewritten(e: IncidentEvent, data: dict[str, Any], **update: Any) -> IncidentEvent:
    """``e`` with other data (read as the payload of its kind) and other fields, unchecked
    (hostile names included)."""
    return e.model_copy(update={**update, "data": payload_for(e.kind, data)})


def lines(markdown: str, section: str) -> list[str]:
    """The non-empty lines of one ``## section``."""
    body = markdown.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in body.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("stage", "row"),
    [
        ("detect", "| detect | impact start | detected | 4.0s | 4.000 |"),
        ("mobilize", "| mobilize | opened | first page | 0.0s | 0.000 |"),
        ("acknowledge", "| acknowledge | opened | acknowledged | 1m 00s | 60.000 |"),
        ("restore", "| restore | impact start | mitigated | 3m 05s | 185.000 |"),
        ("resolve", "| resolve | impact start | resolved | 5m 05s | 305.000 |"),
    ],
    ids=lambda v: str(v)[:12],
)
def test_stage_durations(stage: str, row: str) -> None:
    assert row in lines(render_review(timeline()), "Stage durations")


def test_an_open_incident_has_stages_not_yet_reached() -> None:
    stages = lines(render_review(timeline(resolved=False)), "Stage durations")
    assert "| resolve | impact start | resolved | not yet |  |" in stages
    assert "| restore | impact start | mitigated | 3m 05s | 185.000 |" in stages


def test_summary_and_impact_window() -> None:
    md = render_review(timeline())
    assert md.startswith("# Post-incident review: api: latency_ms anomalous (median_mad)\n")
    summary = lines(md, "Summary")
    for row in ["| service | api |", "| severity | SEV2 |", "| status | resolved |",
                "| team | core |", "| detector | median_mad |", "| signals | latency_ms |",
                "| detections | 2 |", "| mitigation | rolled back (bob) |"]:  # fmt: skip
        assert row in summary
    [window, resolved] = lines(md, "Impact window")
    assert window == (
        "From 2026-03-01 12:00:00.000 UTC to 2026-03-01 12:03:05.000 UTC "
        "(service restored): **3m 05s**."
    )
    assert resolved == "Resolved at 2026-03-01 12:05:05.000 UTC, 5m 05s after impact."


def test_timeline_rows_are_in_seq_order_whatever_the_input_order() -> None:
    events = timeline()
    shuffled = events[:]
    random.Random(3).shuffle(shuffled)
    md = render_review(shuffled)
    assert md == render_review(events)  # deterministic, order-independent
    rows = lines(md, "Timeline")[2:]
    assert [int(r.split("|")[1]) for r in rows] == list(range(1, len(events) + 1))
    kinds = [r.split("|")[4].strip() for r in rows]
    assert kinds == [e.kind.value for e in events]
    assert rows[4] == (
        "| 5 | 2026-03-01 12:01:05.000 | +1m 05s | acknowledged | ann | looking | cmd-5 |"
    )
    assert "| 2 | 2026-03-01 12:00:05.000 | +5.0s | paged | warroom | step 0: alice |  |" in rows
    assert r"TODO write the \| capacity plan" in rows[9]  # pipes escaped in cells
    assert "rollback (owner bob (responder)), took 1m 30s" in rows[8]


def test_the_chart_is_well_formed_svg_with_the_signal_and_the_marks() -> None:
    review = build_review(timeline(), chart_path="chart.svg")
    assert review.chart_svg is not None
    root = ET.fromstring(review.chart_svg)
    assert root.tag == f"{SVG}svg"
    [polyline] = root.iter(f"{SVG}polyline")
    # Points from both detections' context, deduplicated by time.
    assert len(polyline.attrib["points"].split()) == 7
    assert len(list(root.iter(f"{SVG}circle"))) == 2
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "impact start" in texts and "detected" in texts
    assert "![api latency_ms around the incident](chart.svg)" in review.markdown


def test_without_a_chart_path_the_markdown_has_a_sparkline_and_no_image() -> None:
    md = render_review(timeline())
    assert ".svg" not in md and "<svg" not in md
    detections = lines(md, "Detections")
    assert detections[-1] == (
        "| api/latency_ms | 7 | 2026-03-01 11:59:54.000 | 2026-03-01 12:00:20.000 | 99 | 420 "
        "| `▁▁▁██▇▇` |"
    )
    assert (
        "| 2026-03-01 12:00:04.000 | latency_ms | median_mad | 0.999 | 420 | opened the incident |"
        in detections
    )


def test_a_detection_that_says_why_says_it_in_the_review() -> None:
    why = "the value: never seen at this time of day (weekdays, 09:00 to 12:00 UTC) | x"
    detections = lines(render_review(timeline(why=why)), "Detections")
    assert (
        "| 2026-03-01 12:00:20.000 | latency_ms | median_mad | 0.98 | 380 | attached: the value: "
        "never seen at this time of day (weekdays, 09:00 to 12:00 UTC) \\| x |" in detections
    )
    assert any(row.endswith("| opened the incident |") for row in detections)
    long = lines(render_review(timeline(why="x" * 5000)), "Detections")
    assert any(row.endswith("attached: " + "x" * 199 + "… |") for row in long)


def test_each_series_gets_a_row_and_a_gap_in_the_data_breaks_the_line() -> None:
    events = timeline(resolved=False)

    def attached(seconds: float, signal: str, recent: list[tuple[float, float]]) -> None:
        seq = len(events) + 1
        data = {
            "detection_id": f"d{seq}", "signal": signal, "detector": "median_mad", "score": 0.9,
            "detected_at": at(seconds).isoformat(),
            "context": {"series": f"api/{signal}", "value": recent[-1][1],
                        "recent": [[at(t).timestamp(), v] for t, v in recent]},
        }  # fmt: skip
        update = {"id": f"{events[0].incident_id}:{seq}", "seq": seq, "at": at(seconds)}
        events.append(rewritten(events[3], data, **update))

    attached(121, "latency_ms", [(119, 110.0), (121, 105.0)])
    attached(122, "error_rate", [(118, 0.5), (120, 0.6), (122, 7.5)])
    review = build_review(events, chart_path="chart.svg")
    rows = [r for r in lines(review.markdown, "Detections") if r.startswith("| api/")]
    assert [r.split("|")[1:3] for r in rows] == [
        [" api/latency_ms ", " 9 "],
        [" api/error_rate ", " 3 "],
    ]
    assert review.chart_svg is not None
    polylines = list(ET.fromstring(review.chart_svg).iter(f"{SVG}polyline"))
    assert [len(p.attrib["points"].split()) for p in polylines] == [7, 2]


def test_roles_follow_hand_offs() -> None:
    events = timeline(resolved=False)[:6]  # ann took the commander role at #6

    def assign(role: str, person: str, previous: str | None) -> None:
        seq = len(events) + 1
        data = {"role": role, "person": person, "previous": previous}
        update = {"id": f"{events[0].incident_id}:{seq}", "seq": seq}
        events.append(rewritten(events[5], data, **update))

    assign("commander", "carol", "ann")
    assign("scribe", "dan", None)
    assign("commander", "erin", "carol")
    md = render_review(events)
    people = {
        r.split("|")[1].strip(): r.split("|")[2].strip()
        for r in lines(md, "Participants and roles")[2:]
    }
    assert people["ann"] == "commander until #7"
    assert people["carol"] == "commander until #9"
    assert people["dan"] == "scribe" and people["erin"] == "commander"
    assert "| commander: erin (from carol) |" in md


def test_participants_roles_and_runbook_tasks() -> None:
    md = render_review(timeline())
    people = lines(md, "Participants and roles")
    assert people[2].startswith(
        "| warroom | system | - | opened, paged, runbook_attached, detection_attached |"
    )
    assert "| alice | - | step 0 | - | +5.0s |" in people
    assert any(
        r.startswith("| ann | commander | - | acknowledged, role_assigned (2), note, ")
        for r in people
    )
    assert any(
        r.startswith("| bob | responder, task owner | - | task_done, note (2), mitigated ")
        for r in people
    )
    tasks = lines(md, "Runbook tasks")
    # The owner is whoever held the task's owner role (from the runbook) when it was done.
    assert tasks[2] == "| rollback | bob (responder) | bob | 2026-03-01 12:02:30.000 | 1m 30s |"
    assert lines(render_review(timeline()[:2]), "Runbook tasks") == ["None recorded."]


def test_follow_ups_come_from_notes_plus_the_standard_questions() -> None:
    assert [text for text, _ in follow_ups(timeline())] == [
        "add a canary stage for api",
        "write the | capacity plan",
    ]
    items = [line for line in lines(render_review(timeline()), "Follow-ups") if "- [ ]" in line]
    assert items[:2] == [
        "- [ ] add a canary stage for api (noted by ann, #8)",
        "- [ ] write the | capacity plan (noted by bob, #10)",
    ]
    assert len(items) > 2  # the standard prompts follow


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([], "no timeline events"),
        (timeline()[1:], "not 'opened'"),
        ([*timeline()[:2], timeline()[0].model_copy(update={"incident_id": "inc-x"})], "several"),
    ],
    ids=["empty", "no-opened", "mixed"],
)
def test_bad_timelines_are_refused_with_the_reason(
    events: list[IncidentEvent], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        render_review(events)


# --- hostile text: names, notes and signals come from people and producers ------------------

MARKDOWN_INJECTIONS = {
    "link": "[click](https://evil.example/login)",
    "image": "![x](https://evil.example/pixel.png)",
    "autolink": "<https://evil.example/login>",
    "bare-url": "see https://evil.example/login now",
    "www": "see www.evil.com now",
    "html": "<img src=x onerror=alert(1)><script>alert(1)</script>",
    "backticks": "a` | `b",
    "pipes": "a | b | c",
    "escaped-bracket": "\\[click](https://evil.example/login)",
    "reference": "x\n[click]: https://evil.example/login\n[click]",
    "heading": "x\n# Owned\n",
    "entity": "&lt;script&gt;",
}


def render_html(markdown: str) -> str:
    """The review as a GitHub-like renderer shows it: CommonMark, tables and bare-URL links."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"linkify": True}).enable(["table", "linkify"])
    return md.render(markdown)


def rows(html_text: str) -> list[list[str]]:
    """The text of each cell of each table row, as a reader sees it."""
    import html
    import re

    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", c))
            for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, flags=re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", html_text, flags=re.S)
    ]


def hostile_timeline(text: str) -> list[IncidentEvent]:
    """The usual timeline with ``text`` as a task, an actor's name, a note and a detection's
    signal and why."""
    events = timeline(why=text)
    out = []
    for e in events:
        data = e.data.wire()
        if e.kind is IncidentEventKind.TASK_DONE:
            data["task"] = text
        if e.kind is IncidentEventKind.NOTE and str(data.get("text", "")).startswith("TODO"):
            data["text"] = f"TODO {text}"
        if e.kind is IncidentEventKind.DETECTION_ATTACHED:
            data["signal"] = text
        actor = text if e.actor == "bob" else e.actor
        out.append(rewritten(e, data, actor=actor))
    return out


@pytest.mark.parametrize("text", MARKDOWN_INJECTIONS.values(), ids=MARKDOWN_INJECTIONS.keys())
def test_hostile_text_renders_as_typed_and_never_as_markup(text: str) -> None:
    review = build_review(hostile_timeline(text), chart_path="chart.svg")
    html_text = render_html(review.markdown)
    import re

    # The only link target is the chart; no HTML, no heading, no code span comes from the text.
    assert re.findall(r'(?:href|src)="([^"]*)"', html_text) == ["chart.svg"]
    assert "<script" not in html_text and html_text.count("<img") == 1
    assert html_text.count("<h1>") == 1 and "<h1>Owned" not in html_text
    codes = re.findall(r"<code>(.*?)</code>", html_text, flags=re.S)
    assert codes[0].startswith("inc-") and all(set(c) <= set("▁▂▃▄▅▆▇█") for c in codes[1:])
    # Tables keep their columns; each cell shows exactly what was written.
    shown = " ".join(text.split())
    table = rows(html_text)
    [person] = [r for r in table if r[0] == shown and r[2] == "-"]
    [task] = [r for r in table if r[0] == shown and r[1] == "bob (responder)"]
    [detection] = [r for r in table if len(r) > 1 and r[1] == shown]
    assert len(person) == len(task) == 5 and len(detection) == 6
    assert task[2] == shown and detection[5] == f"attached: {shown}"
    assert [r for r in table if r[0] == "task"] == [
        ["task", "owner", "done by", "at (UTC)", "took"]
    ]
    import html

    visible = html.unescape(re.sub(r"<[^>]+>", "", html_text))
    assert f"[ ] {shown} (noted by {shown}, #10)" in visible


def test_an_incident_id_with_backticks_stays_one_code_span() -> None:
    hostile_id = "inc`1 [x](https://evil.example)"
    events = []
    for e in timeline():
        data = e.data.wire()
        if "incident" in data:
            data["incident"] = {**data["incident"], "id": hostile_id}
        events.append(rewritten(e, data, incident_id=hostile_id))
    html_text = render_html(render_review(events))
    assert 'href="' not in html_text
    assert f"<code>{hostile_id}</code>" in html_text


def _tags(html_text: str) -> set[str]:
    import re

    return set(re.findall(r"<([a-z][a-z0-9]*)", html_text))


#: Pieces of Markdown and HTML syntax, so that random text often makes a link or a tag.
SYNTAX = ["[", "]", "(", ")", "!", "`", "<", ">", "|", "\\", "&", "#", "*", "_", "\n", " ", "a",
          ":", "/", "@", "https://evil.com", "www.evil.com", "<img src=x>", "&lt;",
          "x@evil.com"]  # fmt: skip
MARKDOWNISH = st.lists(st.sampled_from(SYNTAX), max_size=16).map("".join) | st.text(
    st.characters(codec="utf-8"), max_size=60
)


@given(text=MARKDOWNISH)
@settings(max_examples=300, deadline=None)
def test_no_text_adds_markup_beyond_emphasis(text: str) -> None:
    """Whatever a name, note or signal holds, the rendered review has the tags of an ordinary
    one (emphasis aside), links only the chart, and shows one heading."""
    import re

    html_text = render_html(build_review(hostile_timeline(text), chart_path="chart.svg").markdown)
    assert _tags(html_text) <= ORDINARY_TAGS | {"em", "strong"}, _tags(html_text) - ORDINARY_TAGS
    assert re.findall(r'(?:href|src)="([^"]*)"', html_text) == ["chart.svg"]
    assert html_text.count("<h1>") == 1


ORDINARY_TAGS = _tags(render_html(build_review(timeline(), chart_path="chart.svg").markdown))


CONTROLS = {
    "terminal-link": (
        "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07",
        "\\]8;;https\\://evil\\.example click \\]8;;",
    ),
    "clear-screen": ("ok\x1b[2J\x1b[Hall fine", "ok \\[2J \\[Hall fine"),
    "bidi-override": ("deploy \u202edetaeler\u202c done", "deploy detaeler done"),
    "nul-and-bell": ("a\x00b\x07c", "a b c"),
}


@pytest.mark.parametrize(("text", "shown"), CONTROLS.values(), ids=CONTROLS.keys())
def test_a_review_holds_no_control_characters(text: str, shown: str) -> None:
    """``warroom review`` prints the Markdown to a terminal: an escape sequence in a note could
    draw a link or wipe the screen there, and a bidirectional override reorders what is read."""
    markdown = build_review(hostile_timeline(text)).markdown
    assert not any(c in markdown for c in "\x1b\x07\x00\u202e\u202c"), repr(markdown)
    assert f"- [ ] {shown} (noted by" in markdown
