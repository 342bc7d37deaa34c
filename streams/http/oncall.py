"""On-call at run time: ``/api/overrides``, ``/api/oncall`` and the iCalendar feeds.

An override (``POST /api/overrides``: ``person``, ``schedule``, ``start``, ``end`` as RFC 3339
times, optional ``comment`` and ``created_by``) puts a person on call in a schedule above its
layers, as a catalog ``overrides`` entry does; a swap is two overrides. It is written to
``catalog.v1`` under ``override/<id>`` and the API answers 201 once the broker has it; every
worker's directory applies it between two inputs. ``DELETE /api/overrides/{id}`` writes a
tombstone. ``GET /api/overrides`` lists those not ended (``?schedule=``, ``?person=``).

``GET /api/oncall?service=S[&at=T]`` answers whom each escalation step of the service's policy
pages at ``at`` (default now), as ``warroom oncall`` prints it; ``?schedule=N`` who is on call in
one schedule. ``/api/schedules/{name}.ics`` and ``/api/people/{id}.ics`` are iCalendar feeds of
the shifts from a week ago to ``weeks`` (default 8) ahead, overrides included.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import icalendar
from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from responders.oncall import Shift, escalation_plan, on_call, policy_for, shifts
from schemas import Catalog, Timestamp, format_errors
from schemas.live_catalog import ShiftOverride
from streams.http.common import error, json_object
from streams.http.writes import acknowledged, write_id

if TYPE_CHECKING:
    from streams.http.server import Api

_TIME: TypeAdapter[datetime] = TypeAdapter(Timestamp)
#: How far back a feed starts: the shift under way keeps its real start.
FEED_PAST = timedelta(days=7)
FEED_WEEKS_DEFAULT, FEED_WEEKS_MAX = 8, 52
#: Shifts a feed holds at most, the earliest first (an hourly rotation has about 1,500 in the
#: default window, 9,000 in 52 weeks). Feeds are built off the event loop: at about 0.3 ms a
#: shift, a long one would otherwise hold up the worker's agents for seconds.
MAX_FEED_EVENTS = 2000
#: The fields an override's body may have (``actor`` is ``created_by``'s other name).
OVERRIDE_FIELDS = ("person", "schedule", "start", "end", "comment", "created_by", "actor")


@dataclass(frozen=True)
class Feed:
    """One kind of iCalendar feed: what it is of, the names it knows, its title and shifts."""

    kind: str
    known: Callable[[Catalog], Container[str]]
    title: Callable[[Catalog, str], str]
    shifts: Callable[[Catalog, str, datetime, datetime], list[Shift]]


def person_shifts(catalog: Catalog, person: str, start: datetime, end: datetime) -> list[Shift]:
    """A person's shifts in every schedule, by start (then schedule)."""
    found = (s for name in catalog.schedules for s in shifts(catalog, name, start, end))
    return sorted((s for s in found if s.person == person), key=lambda s: (s.start, s.schedule))


SCHEDULE_FEED = Feed("schedule", lambda c: c.schedules, lambda c, name: name, shifts)
PERSON_FEED = Feed(
    "person", lambda c: c.people, lambda c, pid: c.people[pid].name or pid, person_shifts
)


def rfc3339(name: str, value: object) -> datetime:
    """``value`` as a UTC time; ``ValueError`` says what is wrong, naming the field."""
    if not isinstance(value, str):
        raise ValueError(f"{name}: required, an RFC 3339 time such as 2026-03-01T09:00:00Z")
    try:
        return _TIME.validate_python(value)
    except ValidationError as exc:
        reason = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ValueError(f"{name}: {reason}") from None


def one(query: Any, name: str) -> str | None:
    """The query parameter ``name`` (None if absent); ``ValueError`` if it is given twice, since
    which one was meant cannot be told."""
    values = query.getall(name, [])
    if len(values) > 1:
        raise ValueError(f"{name}: given {len(values)} times; give it once")
    return values[0] if values else None


def known(names: Any, most: int = 10) -> str:
    """The first ``most`` of ``names``, sorted, for an error that names what would do.

    >>> known([]), known(["b", "a"]), known([f"n{i}" for i in range(12)], 2)
    ('the catalog has no schedules', 'one of a, b', 'one of n0, n1, and 10 more')
    """
    found = sorted(names)
    if not found:
        return "the catalog has no schedules"
    more = f", and {len(found) - most} more" if len(found) > most else ""
    return f"one of {', '.join(found[:most])}{more}"


def weeks_of(text: str | None) -> int:
    """The ``weeks`` parameter of a feed; ``ValueError`` names what is wrong."""
    if text is None:
        return FEED_WEEKS_DEFAULT
    if not (text.isascii() and text.isdigit()):
        raise ValueError(
            f"weeks: must be a whole number from 1 to {FEED_WEEKS_MAX}, not {text!r:.20}"
        )
    if len(text) > 2 or not 1 <= int(text) <= FEED_WEEKS_MAX:
        raise ValueError(f"weeks: must be between 1 and {FEED_WEEKS_MAX}, not {text:.20}")
    return int(text)


def disposition(filename: str) -> str:
    """``Content-Disposition`` for a feed (RFC 6266): a plain ASCII ``filename`` with anything
    but letters, digits, ``.``, ``-`` and ``_`` made ``_`` (no quote, slash or backslash
    survives), and the exact name percent-encoded as ``filename*``.

    >>> print(disposition('a"b/é.ics'))
    inline; filename="a_b__.ics"; filename*=UTF-8''a%22b%2F%C3%A9.ics
    """
    plain = "".join(c if c.isascii() and (c.isalnum() or c in ".-_") else "_" for c in filename)
    return f"inline; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


def calendar(name: str, found: list[Shift], people: dict[str, str], now: datetime) -> bytes:
    """An iCalendar document with one event per shift."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//warroom//on-call//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", name)
    for shift in found:
        event = icalendar.Event()
        who = people.get(shift.person) or shift.person
        event.add("uid", f"{shift.schedule}/{shift.person}/{shift.start.isoformat()}@warroom")
        event.add("summary", f"On call: {shift.schedule} ({who})")
        event.add("dtstart", shift.start)
        event.add("dtend", shift.end)
        event.add("dtstamp", now)
        event.add("categories", [shift.schedule])
        cal.add_component(event)
    return bytes(cal.to_ical())


def routes(api: Api) -> list[web.RouteDef]:
    p = api.p

    async def publish(key: bytes, value: bytes | None) -> None:
        sending = await p.app.send(
            p.settings.topics.catalog, key=key, value=value,
            key_serializer="raw", value_serializer="raw",
        )  # fmt: skip
        await acknowledged(sending)
        # Seen at once by this worker; its directory confirms it from the topic.
        if p.catalogs is not None:
            p.catalogs.apply(key, value, -1)
            p.catalogs.settle()

    def parsed(body: dict[str, Any], now: datetime, request_id: str, actor: str) -> ShiftOverride:
        """The override the body asks for, taken by ``actor`` (the caller; a body's
        ``created_by`` is ignored, as a body's actor is everywhere); ``ValueError`` names the
        field and the problem."""
        unknown = sorted(set(body) - set(OVERRIDE_FIELDS))
        if unknown:
            raise ValueError(
                f"{unknown[0]!s:.60}: unknown field (known: {', '.join(OVERRIDE_FIELDS)})"
            )
        catalog = p.catalog
        schedule, person = body.get("schedule"), body.get("person")
        if not isinstance(schedule, str) or schedule not in catalog.schedules:
            raise ValueError(
                f"schedule: unknown schedule {schedule!r:.80} ({known(catalog.schedules)})"
            )
        if not isinstance(person, str) or person not in catalog.people:
            raise ValueError(f"person: unknown person {person!r}")
        start, end = rfc3339("start", body.get("start")), rfc3339("end", body.get("end"))
        if end <= start:
            raise ValueError("end: must be after start")
        if end <= now:
            raise ValueError("end: already past")
        comment = body.get("comment", "")
        if not isinstance(comment, str):
            raise ValueError("comment: must be text")
        try:
            return ShiftOverride(
                id=request_id, schedule=schedule, person=person, start=start, end=end,
                created_by=actor, created_at=now, comment=comment,
            )  # fmt: skip
        except ValidationError as exc:
            raise ValueError(format_errors(exc)) from None

    async def create(request: web.Request) -> web.Response:
        who = api.authorized(request)
        body = await json_object(request)
        now = datetime.now(tz=UTC)
        try:
            # The id comes from the content, not its layout: a retry serialised again is the
            # same write.
            content = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
            override = parsed(
                body, now, write_id("ovr", request, body=content, length=16), who.actor
            )
        except ValueError as exc:
            return error(400, str(exc))
        await publish(override.key, override.model_dump_json().encode())
        return web.json_response(override.model_dump(mode="json"), status=201)

    async def listing(request: web.Request) -> web.Response:
        if p.catalogs is None:
            return web.json_response({"overrides": []})
        rows = p.catalogs.active_overrides(datetime.now(tz=UTC))
        for name in ("schedule", "person"):
            try:
                wanted = one(request.query, name)
            except ValueError as exc:
                return error(400, str(exc))
            if wanted:
                rows = [o for o in rows if getattr(o, name) == wanted]
        return web.json_response({"overrides": [o.model_dump(mode="json") for o in rows]})

    async def delete(request: web.Request) -> web.Response:
        api.authorized(request)
        override_id = request.match_info["id"]
        found = p.catalogs.overrides.get(override_id) if p.catalogs is not None else None
        if found is None:
            return error(404, f"override {override_id!r} not found")
        await publish(found.key, None)
        return web.json_response({"deleted": override_id})

    def instant(request: web.Request) -> datetime:
        at = one(request.query, "at")
        return rfc3339("at", at) if at else datetime.now(tz=UTC)

    def in_force() -> dict[str, Any]:
        return {"version": p.catalog_version, "digest": p.catalog_digest}

    async def oncall(request: web.Request) -> web.Response:
        try:
            at = instant(request)
            service, schedule = one(request.query, "service"), one(request.query, "schedule")
            incident = one(request.query, "incident")
        except ValueError as exc:
            return error(400, str(exc))
        catalog = p.catalog
        if schedule:
            if schedule not in catalog.schedules:
                return error(404, f"schedule {schedule!r} not found")
            people = on_call(catalog, schedule, at)
            when = _TIME.dump_python(at, mode="json")
            answer = {"schedule": schedule, "at": when, "people": people, "catalog": in_force()}
            return web.json_response(answer)
        if not service:
            return error(400, "service: required (or schedule)")
        found = policy_for(catalog, service)
        if found is None:
            return error(404, f"no escalation policy pages for service {service!r}")
        name, policy = found
        steps = []
        for planned in escalation_plan(catalog, service, at, incident):
            index = planned.step % len(policy.steps)
            steps.append({
                "step": planned.step,
                "policy_step": index,
                "due_at": _TIME.dump_python(planned.due_at, mode="json"),
                "notify": policy.steps[index].notify,
                "people": planned.people,
            })  # fmt: skip
        answer = {
            "service": service, "team": catalog.team_for(service), "policy": name,
            "at": _TIME.dump_python(at, mode="json"), "steps": steps, "catalog": in_force(),
        }  # fmt: skip
        return web.json_response(answer)

    def window(request: web.Request) -> tuple[datetime, datetime, datetime]:
        weeks = weeks_of(one(request.query, "weeks"))
        now = datetime.now(tz=UTC)
        return now, now - FEED_PAST, now + timedelta(weeks=weeks)

    def ics(body: bytes, filename: str) -> web.Response:
        return web.Response(
            body=body,
            content_type="text/calendar",
            charset="utf-8",
            headers={"Content-Disposition": disposition(f"{filename}.ics")},
        )

    def feed(param: str, feed: Feed) -> Callable[[web.Request], Awaitable[web.Response]]:
        """The handler of one kind of feed, named by the path's ``param``."""

        async def handler(request: web.Request) -> web.Response:
            key, catalog = request.match_info[param], p.catalog
            if key not in feed.known(catalog):
                return error(404, f"{feed.kind} {key!r} not found")
            try:
                now, lo, hi = window(request)
            except ValueError as exc:
                return error(400, str(exc))

            def build() -> bytes:
                found = feed.shifts(catalog, key, lo, hi)[:MAX_FEED_EVENTS]
                names = {pid: person.name for pid, person in catalog.people.items()}
                return calendar(f"On call: {feed.title(catalog, key)}", found, names, now)

            return ics(await asyncio.to_thread(build), key)

        return handler

    return [
        web.post("/api/overrides", create),
        web.get("/api/overrides", listing),
        web.delete("/api/overrides/{id}", delete),
        web.get("/api/oncall", oncall),
        web.get("/api/schedules/{name}.ics", feed("name", SCHEDULE_FEED)),
        web.get("/api/people/{id}.ics", feed("id", PERSON_FEED)),
    ]
