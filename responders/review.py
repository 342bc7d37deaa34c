"""The post-incident review: Markdown (and an SVG chart of the signal) from the timeline alone.

Everything comes from one incident's events on ``incidents.events.v1``: the incident is their
fold (:func:`responders.lifecycle.replay`), the stage durations use the definitions of
:mod:`responders.mttr` (plus mobilize = first page - opened), and the chart plots the points
the detections carried in their context. No clock is read: the review names the last event it
was built from, so the same timeline always renders the same text.

>>> from datetime import UTC, datetime
>>> from schemas import IncidentEvent
>>> t = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
>>> incident = {
...     "id": "inc-1", "routing_key": "api", "service": "api", "title": "api: latency",
...     "status": "triggered", "severity": "SEV2", "impact_started_at": t,
...     "detected_at": t, "opened_at": t, "last_seq": 1,
... }
>>> opened = IncidentEvent(
...     id="inc-1:1", incident_id="inc-1", routing_key="api", seq=1, kind="opened", at=t,
...     actor="warroom", data={"incident": incident},
... )
>>> review = build_review([opened])
>>> review.markdown.splitlines()[0]
'# Post-incident review: api: latency'
>>> review.chart_svg is None
True
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any, TypeGuard
from urllib.parse import quote
from xml.sax.saxutils import escape

from responders.lifecycle import replay
from responders.mttr import durations
from schemas import Incident, IncidentEvent, IncidentEventKind
from schemas.changes import Change
from schemas.timeline import (
    DetectionAttached,
    Escalated,
    Opened,
    Paged,
    Payload,
    RoleAssigned,
    RunbookAttached,
    TaskDone,
    Text,
)

E = IncidentEventKind

#: Note prefixes that make a note a follow-up item (compared case-insensitively).
FOLLOW_UP_PREFIXES = ("follow-up:", "followup:", "todo:", "todo")
STANDARD_FOLLOW_UPS = (
    "Could the anomaly have been detected sooner (detector, threshold, signal)?",
    "Did the page reach the right people quickly, and was anyone missing?",
    "What would have restored service sooner (rollback, feature flag, capacity)?",
    "Is the runbook up to date with what was done during this incident?",
    "Which alerts were noise, and which signals were missing?",
)
_SPARK = "▁▂▃▄▅▆▇█"
_SPARK_WIDTH = 60
#: Characters of a detection's ``why`` the detections table shows.
WHY_CHARS = 200


@dataclass(frozen=True)
class Stage:
    """One stage duration: its name, the moments it spans, and seconds (None: not yet)."""

    name: str
    start: str
    end: str
    seconds: float | None


@dataclass(frozen=True)
class Review:
    """The rendered review; ``chart_svg`` is None when the timeline holds no signal points."""

    incident: Incident
    markdown: str
    chart_svg: str | None


@dataclass(frozen=True)
class _Detection:
    at: datetime
    signal: str
    detector: str
    score: float | None
    value: float | None
    series: str | None
    recent: tuple[tuple[float, float], ...]
    opening: bool
    #: What the detector found new, in its words (its context's ``why``), where it says.
    why: str | None = None


def stages(incident: Incident) -> list[Stage]:
    """Detect, mobilize, acknowledge, restore and resolve, as defined in :mod:`responders.mttr`.

    >>> from datetime import timedelta
    >>> t = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    >>> inc = Incident(
    ...     id="i", routing_key="a", service="a", title="a", status="acknowledged",
    ...     severity="SEV3", impact_started_at=t, detected_at=t + timedelta(seconds=4),
    ...     opened_at=t + timedelta(seconds=5), first_paged_at=t + timedelta(seconds=5),
    ...     acknowledged_at=t + timedelta(seconds=65),
    ... )
    >>> [(s.name, s.seconds) for s in stages(inc)]  # doctest: +NORMALIZE_WHITESPACE
    [('detect', 4.0), ('mobilize', 0.0), ('acknowledge', 60.0), ('restore', None),
     ('resolve', None)]
    """
    d = durations(incident)
    first_page = incident.first_paged_at
    mobilize = None if first_page is None else (first_page - incident.opened_at).total_seconds()
    return [
        Stage("detect", "impact start", "detected", d.detect_s),
        Stage("mobilize", "opened", "first page", mobilize),
        Stage("acknowledge", "opened", "acknowledged", d.acknowledge_s),
        Stage("restore", "impact start", "mitigated", d.restore_s),
        Stage("resolve", "impact start", "resolved", d.resolve_s),
    ]


def render_review(events: Sequence[IncidentEvent], chart_path: str | None = None) -> str:
    """The review as Markdown (see :func:`build_review`)."""
    return build_review(events, chart_path).markdown


def build_review(
    events: Sequence[IncidentEvent],
    chart_path: str | None = None,
    changes: Sequence[Change] | None = None,
    lookback_s: float = 3600.0,
) -> Review:
    """Render the review of the incident whose timeline ``events`` are (any order, no dups).

    With ``chart_path`` (a relative file name such as ``chart.svg``), the Markdown shows the
    chart as an image at that path; the caller writes ``Review.chart_svg`` there. Without it,
    the Markdown carries a text sparkline only (GitHub strips inline SVG and data URIs).
    ``changes`` (those of the ``lookback_s`` before impact, to the service and what it depends
    on: ``responders.changes.before_impact``) are listed in their own section.
    Raises ValueError when ``events`` is empty, mixes incidents or does not start with
    ``opened``.
    """
    timeline = _ordered(events)
    incident = replay(timeline)[timeline[0].incident_id]
    impact = incident.impact_started_at
    detections = _detections(timeline)
    points, marks = _series(detections, detections[0]) if detections else ([], [])
    chart = _chart_svg(incident, points, marks) if points else None
    last = timeline[-1]

    out: list[str] = [f"# Post-incident review: {_text(incident.title)}", ""]
    out += [
        f"{_code(incident.id)} · {incident.severity.value} · {incident.status.value} · "
        f"built from {len(timeline)} timeline events, the last #{last.seq} at {_utc(last.at)} UTC",
        "",
    ]
    out += _summary(incident, timeline)
    out += _impact(incident)
    if changes is not None:
        out += _changes(incident, changes, lookback_s)
    out += ["## Stage durations", "", "| stage | from | to | duration | seconds |"]
    out.append("|---|---|---|---|---:|")
    for s in stages(incident):
        seconds = "" if s.seconds is None else f"{s.seconds:.3f}"
        out.append(f"| {s.name} | {s.start} | {s.end} | {_duration(s.seconds)} | {seconds} |")
    out += [
        "",
        "Detect, restore and resolve count from impact start (the first anomalous point); "
        "mobilize and acknowledge from the incident's opening.",
        "",
        "## Timeline",
        "",
        "| # | time (UTC) | since impact | event | actor | details | cause |",
        "|---:|---|---:|---|---|---|---|",
    ]
    owners = task_owners(timeline)
    for e in timeline:
        since = "+" + _duration((e.at - impact).total_seconds())
        out.append(
            f"| {e.seq} | {_utc(e.at)} | {since} | {e.kind.value} | {_cell(e.actor)} | "
            f"{_cell(_details(e, owners))} | {_cell(e.cause or '')} |"
        )
    out.append("")
    out += _detections_section(incident, detections, points, chart_path if chart else None)
    out += _participants(timeline, impact, owners)
    out += _tasks(timeline, owners)
    out += _follow_ups(timeline)
    return Review(incident, "\n".join(out).rstrip() + "\n", chart)


def _ordered(events: Sequence[IncidentEvent]) -> list[IncidentEvent]:
    if not events:
        raise ValueError("no timeline events: nothing to review")
    ids = {e.incident_id for e in events}
    if len(ids) > 1:
        raise ValueError(f"events of several incidents: {', '.join(sorted(ids))}")
    by_seq = {e.seq: e for e in events}
    timeline = [by_seq[s] for s in sorted(by_seq)]
    if timeline[0].kind is not E.OPENED:
        raise ValueError(f"the first event is {timeline[0].kind.value!r}, not 'opened'")
    return timeline


def _summary(incident: Incident, timeline: list[IncidentEvent]) -> list[str]:
    rows = [
        ("service", incident.service),
        ("severity", incident.severity.value),
        ("status", incident.status.value),
        ("team", incident.team or "none"),
        ("detector", incident.detector or "none"),
        ("signals", ", ".join(incident.signals) or "none"),
        ("detections", str(incident.detection_count)),
    ]
    for kind, label in ((E.MITIGATED, "mitigation"), (E.RESOLVED, "resolution")):
        said = [
            f"{e.data.text} ({e.actor})"
            for e in timeline
            if e.kind is kind and isinstance(e.data, Text) and e.data.text
        ]
        if said:
            rows.append((label, said[-1]))
    out = ["## Summary", "", "| | |", "|---|---|"]
    out += [f"| {name} | {_cell(value)} |" for name, value in rows]
    return [*out, ""]


def _impact(incident: Incident) -> list[str]:
    start = incident.impact_started_at
    out = ["## Impact window", ""]
    if incident.mitigated_at is None:
        out.append(f"From {_utc(start)} UTC; service not yet restored.")
    else:
        span = (incident.mitigated_at - start).total_seconds()
        out.append(
            f"From {_utc(start)} UTC to {_utc(incident.mitigated_at)} UTC "
            f"(service restored): **{_duration(span)}**."
        )
    if incident.resolved_at is not None:
        span = (incident.resolved_at - start).total_seconds()
        out.append(f"Resolved at {_utc(incident.resolved_at)} UTC, {_duration(span)} after impact.")
    return [*out, ""]


def _changes(incident: Incident, changes: Sequence[Change], lookback_s: float) -> list[str]:
    span = "hour" if lookback_s == 3600 else _duration(lookback_s)
    out = [f"## Changes in the {span} before impact", ""]
    if not changes:
        return [*out, f"None recorded for {_code(incident.service)} or what it depends on.", ""]
    out += ["| time (UTC) | before impact | service | change | source | links |"]
    out.append("|---|---:|---|---|---|---|")
    for c in changes:
        before = _duration((incident.impact_started_at - c.at).total_seconds())
        links = " ".join(
            f"[{_cell(x.get('text') or 'link')}]({_link(x.get('href', ''))})" for x in c.links
        )
        out.append(
            f"| {_utc(c.at)} | {before} | {_cell(c.service)} | {_cell(c.summary)} | "
            f"{_cell(c.source or '')} | {links} |"
        )
    return [*out, ""]


def _link(href: str) -> str:
    """A link target that Markdown cannot be broken out of (http(s) only, no spaces or parens)."""
    if not href.startswith(("http://", "https://")):
        return "#"
    return "".join(ch if ch not in " ()<>[]|\n\r" else f"%{ord(ch):02X}" for ch in href)


@dataclass(frozen=True)
class Owner:
    """Who owned a runbook task when it was done: its owner role (from the attached runbook)
    and the person who held that role then, if anyone did."""

    role: str
    person: str | None = None

    def __str__(self) -> str:
        return f"{self.person} ({self.role})" if self.person else self.role


def task_owners(timeline: Sequence[IncidentEvent]) -> dict[int, Owner]:
    """The owner of each task done, by the seq of its ``task_done`` event.

    >>> from datetime import UTC, datetime
    >>> def ev(seq, kind, **data):
    ...     return IncidentEvent(id=f"i:{seq}", incident_id="i", routing_key="k", seq=seq,
    ...                          kind=kind, at=datetime(2026, 1, 1, tzinfo=UTC), actor="a",
    ...                          data=data)
    >>> owners = task_owners([
    ...     ev(1, "runbook_attached", tasks=[{"id": "rollback", "phase": "mitigate",
    ...                                      "owner_role": "responder"}]),
    ...     ev(2, "task_done", task_id="rollback", phase="mitigate"),
    ...     ev(3, "role_assigned", role="responder", person="bob"),
    ...     ev(4, "task_done", task_id="rollback", phase="mitigate"),
    ... ])
    >>> str(owners[2]), str(owners[4])
    ('responder', 'bob (responder)')
    """
    roles: dict[str, str] = {}
    holders: dict[str, str] = {}
    out: dict[int, Owner] = {}
    for e in sorted(timeline, key=lambda e: e.seq):
        d = e.data
        if isinstance(d, RunbookAttached):
            roles = {_task(t.get("phase"), t.get("id")): str(t["owner_role"])
                     for t in d.tasks if t.get("owner_role")}  # fmt: skip
        elif isinstance(d, RoleAssigned):
            holders[d.role] = d.person
        elif isinstance(d, TaskDone):
            role = roles.get(_task(d.phase, d.task_id or d.task))
            if role is not None:
                out[e.seq] = Owner(role, holders.get(role))
    return out


def _task(phase: object, task_id: object) -> str:
    return f"{phase}/{task_id}"


def _details(e: IncidentEvent, owners: dict[int, Owner]) -> str:
    """What an event says, in one cell; kinds without their own wording show their wire
    payload's role hand-off, change, text, or plain values."""
    d = e.data.wire()
    if e.kind is E.CHANGE_RECORDED:
        source = f" ({d['source']})" if d.get("source") else ""
        return f"change to {d.get('service', '?')}: {d.get('summary', '')}{source}"
    if e.kind is E.OPENED:
        inc, det = d.get("incident", {}), d.get("detection", {})
        text = f"opened {inc.get('severity', '')}: {inc.get('title', '')}".strip()
        if det:
            text += f"; {det.get('signal')} score {_num(det.get('score'))}"
            value = det.get("context", {}).get("value")
            text += f", value {_num(value)}" if value is not None else ""
        return text
    if e.kind is E.DETECTION_ATTACHED:
        value = d.get("value", (d.get("context") or {}).get("value"))
        text = f"{d.get('signal', '?')} score {_num(d.get('score'))}"
        return text + (f", value {_num(value)}" if value is not None else "")
    if e.kind in (E.PAGED, E.ESCALATED):
        who = ", ".join(str(r) for r in d.get("recipients", []))
        return f"step {d.get('step', '?')}: {who}"
    if e.kind is E.TASK_DONE:
        return _task_text(e, owners.get(e.seq))
    parts = []
    if d.get("role") and d.get("person"):
        handed = f" (from {d['previous']})" if d.get("previous") else ""
        parts.append(f"{d['role']}: {d['person']}{handed}")
    if "from" in d and "to" in d:
        parts.append(f"{d['from']} -> {d['to']}")
    if d.get("text"):
        parts.append(str(d["text"]))
    if parts:
        return "; ".join(parts)
    return ", ".join(f"{k}={v}" for k, v in sorted(d.items()) if isinstance(v, str | int | float))


def _detections(timeline: list[IncidentEvent]) -> list[_Detection]:
    out = []
    for e in timeline:
        if isinstance(e.data, Opened) and e.data.detection:
            d = e.data.detection
            at = _when(d.get("ts"), e.at)
            opening = True
        elif isinstance(e.data, DetectionAttached):
            d = e.data.wire()
            at = _when(d.get("detected_at"), e.at)
            opening = False
        else:
            continue
        context = d.get("context") or {}
        value = d.get("value", context.get("value"))
        recent = tuple(
            (float(p[0]), float(p[1]))
            for p in context.get("recent") or []
            if isinstance(p, list | tuple) and len(p) == 2 and _finite(p[0]) and _finite(p[1])
        )
        out.append(
            _Detection(
                at=at,
                signal=str(d.get("signal", "?")),
                detector=str(d.get("detector", "?")),
                score=float(d["score"]) if _finite(d.get("score")) else None,
                value=float(value) if _finite(value) else None,
                series=context.get("series") if isinstance(context.get("series"), str) else None,
                recent=recent,
                opening=opening,
                why=_why(context.get("why")),
            )
        )
    return out


def _series(
    detections: list[_Detection], first: _Detection
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """The points of ``first``'s series (from its detections' context) and its detection marks."""
    same = [
        d
        for d in detections
        if d.signal == first.signal and (d.series is None or d.series == first.series)
    ]
    points: dict[float, float] = {}
    for d in same:
        points.update(dict(d.recent))
    marks = [(d.at.timestamp(), d.value) for d in same if d.value is not None]
    for ts, value in marks:
        points.setdefault(ts, value)
    return sorted(points.items()), sorted(marks)


def _detections_section(
    incident: Incident,
    detections: list[_Detection],
    points: list[tuple[float, float]],
    chart_path: str | None,
) -> list[str]:
    out = ["## Detections", ""]
    if not detections:
        return [*out, "None recorded on the timeline.", ""]
    out += ["| time (UTC) | signal | detector | score | value | |", "|---|---|---|---:|---:|---|"]
    for d in detections:
        out.append(
            f"| {_utc(d.at)} | {_cell(d.signal)} | {_cell(d.detector)} | {_num(d.score)} | "
            f"{_num(d.value)} | {'opened the incident' if d.opening else 'attached'}"
            f"{': ' + _cell(d.why) if d.why else ''} |"
        )
    out.append("")
    if not points:
        return [*out, "The detections carried no signal points, so there is no chart.", ""]
    if chart_path is not None:
        alt = f"{_text(incident.service)} {_text(detections[0].signal)} around the incident"
        out += [f"![{alt}]({quote(chart_path, safe='/._-')})", ""]
    out += ["| series | points | from (UTC) | to (UTC) | min | max | shape |"]
    out.append("|---|---:|---|---|---:|---:|---|")
    shown: set[tuple[str, str | None]] = set()
    for d in detections:
        if (d.signal, d.series) in shown:
            continue
        shown.add((d.signal, d.series))
        series, _ = _series(detections, d)
        if series:
            values = [v for _, v in series]
            out.append(
                f"| {_cell(d.series or d.signal)} | {len(series)} | {_utc(_dt(series[0][0]))} | "
                f"{_utc(_dt(series[-1][0]))} | {_num(min(values))} | {_num(max(values))} | "
                f"`{_sparkline(values)}` |"
            )
    return [*out, ""]


def _participants(
    timeline: list[IncidentEvent], impact: datetime, owners: dict[int, Owner]
) -> list[str]:
    seen: dict[str, dict[str, Any]] = {}

    def person(name: str, at: datetime) -> dict[str, Any]:
        return seen.setdefault(name, {"first": at, "roles": [], "paged": [], "did": {}})

    for e in timeline:
        p = person(e.actor, e.at)
        p["did"][e.kind.value] = p["did"].get(e.kind.value, 0) + 1
        d = e.data
        if isinstance(d, RoleAssigned):
            # A role goes to the person named; a hand-off names the previous holder.
            who = person(d.person, e.at)
            if d.role not in who["roles"]:
                who["roles"].append(d.role)
            if d.previous and d.previous != d.person:
                handed = f"{d.role} until #{e.seq}"
                before = person(d.previous, e.at)
                before["roles"] = [r for r in before["roles"] if r != d.role] + [handed]
        if isinstance(d, Paged | Escalated):
            step = "?" if d.step is None else d.step
            for r in d.recipients:
                person(r, e.at)["paged"].append(f"step {step}")
        task_owner = owners[e.seq].person if e.seq in owners else None
        if task_owner:
            owner = person(task_owner, e.at)
            owner["roles"] += [] if "task owner" in owner["roles"] else ["task owner"]
    out = [
        "## Participants and roles",
        "",
        "| participant | roles | paged | on the timeline | first seen |",
        "|---|---|---|---|---:|",
    ]
    for name, p in seen.items():
        did = ", ".join(f"{k} ({n})" if n > 1 else k for k, n in p["did"].items()) or "-"
        roles = ", ".join(p["roles"]) or ("system" if name == "warroom" else "-")
        since = "+" + _duration((p["first"] - impact).total_seconds())
        out.append(
            f"| {_cell(name)} | {_cell(roles)} | {_cell(', '.join(p['paged']) or '-')} | "
            f"{_cell(did)} "
            f"| {since} |"
        )
    return [*out, ""]


def _task_text(e: IncidentEvent, owner: Owner | None) -> str:
    d = e.data
    text = (d.task if isinstance(d, TaskDone) else None) or "task"
    if owner is not None:
        text += f" (owner {owner})"
    took = _task_seconds(d)
    return text + (f", took {_duration(took)}" if took is not None else "")


def _task_seconds(d: Payload) -> float | None:
    took = d.duration_s if isinstance(d, TaskDone) else None
    return took if _finite(took) else None


def _tasks(timeline: list[IncidentEvent], owners: dict[int, Owner]) -> list[str]:
    done = [(e, e.data) for e in timeline if isinstance(e.data, TaskDone)]
    out = ["## Runbook tasks", ""]
    if not done:
        return [*out, "None recorded.", ""]
    out += ["| task | owner | done by | at (UTC) | took |", "|---|---|---|---|---:|"]
    for e, d in done:
        out.append(
            f"| {_cell(d.task or '?')} | {_cell(str(owners.get(e.seq, '-')))} | "
            f"{_cell(e.actor)} | {_utc(e.at)} | {_duration(_task_seconds(d))} |"
        )
    return [*out, ""]


def follow_ups(timeline: Sequence[IncidentEvent]) -> list[tuple[str, IncidentEvent]]:
    """Notes that start with ``follow-up:`` or ``TODO``, with the prefix removed."""
    found = []
    for e in timeline:
        said = e.data.text if e.kind is E.NOTE and isinstance(e.data, Text) else None
        text = (said or "").strip()
        for prefix in FOLLOW_UP_PREFIXES:
            if text.lower().startswith(prefix):
                item = text[len(prefix) :].strip(" :-")
                if item:
                    found.append((item, e))
                break
    return found


def _follow_ups(timeline: list[IncidentEvent]) -> list[str]:
    out = ["## Follow-ups", ""]
    items = follow_ups(timeline)
    if items:
        out += [f"- [ ] {_text(t)} (noted by {_text(e.actor)}, #{e.seq})" for t, e in items]
    else:
        out.append("No follow-up notes on the timeline (notes starting with `follow-up:`).")
    out += ["", "Questions for every review:", ""]
    out += [f"- [ ] {q}" for q in STANDARD_FOLLOW_UPS]
    return [*out, ""]


def _chart_svg(
    incident: Incident, points: list[tuple[float, float]], marks: list[tuple[float, float]]
) -> str:
    """A 640x220 line chart: impact window shaded, impact start and detection marked."""
    w, h, left, right, top, bottom = 640, 220, 64, 16, 28, 36
    impact, detected = incident.impact_started_at.timestamp(), incident.detected_at.timestamp()
    restored = incident.mitigated_at.timestamp() if incident.mitigated_at else None
    t0 = min(points[0][0], impact)
    t1 = max(points[-1][0], detected, restored or detected, *(t for t, _ in marks))
    t1 = t1 + (t1 - t0) * 0.03 if t1 > t0 else t0 + 1.0
    values = [v for _, v in points]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
    lo, hi = lo - pad, hi + pad

    def x(t: float) -> float:
        return left + (t - t0) / (t1 - t0) * (w - left - right)

    def y(v: float) -> float:
        return top + (hi - v) / (hi - lo) * (h - top - bottom)

    signal = incident.signals[0] if incident.signals else "signal"
    title = f"{incident.service} {signal} around {incident.id}"
    base = h - bottom
    end = min(restored, t1) if restored is not None else t1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{w}" height="{h}" fill="#ffffff"/>',
        f'<rect x="{x(impact):.1f}" y="{top}" width="{max(0.0, x(end) - x(impact)):.1f}" '
        f'height="{base - top}" fill="#f85149" fill-opacity="0.12"/>',
        f'<line x1="{left}" y1="{base}" x2="{w - right}" y2="{base}" stroke="#57606a"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#57606a"/>',
        f'<text x="{left - 6}" y="{y(hi - pad) + 4:.1f}" text-anchor="end">'
        f"{escape(_num(hi - pad))}</text>",
        f'<text x="{left - 6}" y="{y(lo + pad) + 4:.1f}" text-anchor="end">'
        f"{escape(_num(lo + pad))}</text>",
        f'<text x="{left}" y="{h - 12}">{_dt(t0):%H:%M:%S} UTC</text>',
        f'<text x="{w - right}" y="{h - 12}" text-anchor="end">{_dt(t1):%H:%M:%S} UTC</text>',
        f'<text x="{left}" y="16" font-weight="bold">{escape(title)}</text>',
    ]
    for segment in _segments(points):
        line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in segment)
        parts.append(f'<polyline points="{line}" fill="none" stroke="#0969da" stroke-width="1.5"/>')
    for label, t, anchor, dx in (
        ("impact start", impact, "end", -3),
        ("detected", detected, "start", 3),
    ):
        parts.append(
            f'<line x1="{x(t):.1f}" y1="{top}" x2="{x(t):.1f}" y2="{base}" stroke="#cf222e" '
            f'stroke-dasharray="4 3"/>'
        )
        parts.append(
            f'<text x="{x(t) + dx:.1f}" y="{top + 10}" text-anchor="{anchor}" fill="#cf222e">'
            f"{label}</text>"
        )
    if restored is not None:
        parts.append(
            f'<line x1="{x(restored):.1f}" y1="{top}" x2="{x(restored):.1f}" y2="{base}" '
            f'stroke="#1a7f37" stroke-dasharray="4 3"/>'
        )
        parts.append(
            f'<text x="{x(restored) - 3:.1f}" y="{base - 6}" text-anchor="end" fill="#1a7f37">'
            "restored</text>"
        )
    for t, v in marks:
        parts.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3.5" fill="#cf222e"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _segments(points: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """Split where the series has a gap (over 3x its median spacing): no line across no data."""
    gaps = sorted(b[0] - a[0] for a, b in pairwise(points))
    limit = 3 * gaps[len(gaps) // 2] if gaps else 0.0
    out = [[points[0]]]
    for a, b in pairwise(points):
        if b[0] - a[0] > limit > 0:
            out.append([])
        out[-1].append(b)
    return out


def _sparkline(values: list[float]) -> str:
    if len(values) > _SPARK_WIDTH:
        step = len(values) / _SPARK_WIDTH
        values = [values[int(i * step)] for i in range(_SPARK_WIDTH)]
    lo, hi = min(values), max(values)
    if hi == lo:
        return _SPARK[0] * len(values)
    top = len(_SPARK) - 1
    return "".join(_SPARK[round((v - lo) / (hi - lo) * top)] for v in values)


def _when(value: object, default: datetime) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return default
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if _finite(value):
        return _dt(float(value))
    return default


def _finite(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _duration(seconds: float | None) -> str:
    """Human duration: ``4.2s``, ``2m 05s``, ``1h 02m 03s``; ``not yet`` for None.

    >>> _duration(4.24), _duration(125.0), _duration(3723.0), _duration(None)
    ('4.2s', '2m 05s', '1h 02m 03s', 'not yet')
    """
    if seconds is None:
        return "not yet"
    if abs(seconds) < 60:
        return f"{seconds:.1f}s"
    sign, whole = ("-" if seconds < 0 else ""), round(abs(seconds))
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{sign}{h}h {m:02d}m {s:02d}s" if h else f"{sign}{m}m {s:02d}s"


def _num(value: object) -> str:
    if not _finite(value):
        return "-"
    return f"{float(value):.4g}"


#: What untrusted text must not be in Markdown: a backslash first (so no escape is undone),
#: then link and image brackets, code spans, HTML and entities.
_MARKDOWN = (
    ("\\", "\\\\"),
    ("`", "\\`"),
    ("[", "\\["),
    ("]", "\\]"),
    ("&", "&amp;"),
    ("<", "&lt;"),
    (">", "&gt;"),
)
#: What renderers make links of without brackets: a scheme's ``://``, a domain's dots (``www.``,
#: ``evil.com``) and an email address's ``@``. Escaped, each shows the same and links nowhere.
_AUTOLINK = re.compile(r"(?<=[^\W_])(:)(?=//)|(?<=[^\W_])(\.)(?=[^\W\d_])|@")


#: Bidirectional embeddings, overrides and isolates: they reorder what a reader sees.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _one_line(value: str) -> str:
    r"""``value`` on one line, with control characters (terminal escape sequences among them)
    and bidirectional overrides made spaces, and runs of spaces made one.

    >>> _one_line("ok\x1b[2J all\r\n\u202efine")
    'ok [2J all fine'
    """
    kept = (" " if c in _BIDI or unicodedata.category(c) == "Cc" else c for c in value)
    return " ".join("".join(kept).split())


def _text(value: str) -> str:
    r"""Markdown-safe inline text: one line, no raw HTML, no link, image or code span, no bare
    URL, domain or email address a renderer would link. Alert text, notes and names come from
    people and producers.

    >>> print(_text("see [docs](https://evil.com)\n# `x` <b>&</b> www.evil.com ann@evil.com"))
    see \[docs\](https\://evil\.com) # \`x\` &lt;b&gt;&amp;&lt;/b&gt; www\.evil\.com ann\@evil\.com
    """
    text = _one_line(value)
    for char, escaped in _MARKDOWN:
        text = text.replace(char, escaped)
    return _AUTOLINK.sub(lambda m: "\\" + m.group(0), text)


def _code(value: str) -> str:
    """``value`` as a code span, whatever backticks it holds (a longer fence around them).

    >>> _code("inc-1"), _code("a`b")
    ('`inc-1`', '``a`b``')
    """
    text = _one_line(value)
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _why(value: Any) -> str | None:
    """A detection's ``why``, as far as a table cell shows it (a detection from elsewhere may
    carry anything there)."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value if len(value) <= WHY_CHARS else value[: WHY_CHARS - 1] + "…"


def _cell(value: str) -> str:
    return _text(value).replace("|", "\\|")
