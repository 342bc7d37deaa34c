"""Bad input against a real worker: every HTTP endpoint and every inbound topic, fuzzed.

Properties: every HTTP answer is 2xx or 4xx, never 5xx; every 4xx body is JSON with an ``error``
string; no body shows a traceback or a source path; every message on an inbound topic that does
not decode lands on its ``.dlq`` with a reason, the rest is processed; and afterwards the worker
is alive and ready. One worker serves the whole module.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import (
    Command,
    Detection,
    IncidentEvent,
    LogRecord,
    MetricPoint,
    MttrContribution,
    Page,
)
from streams.codec import Decoded, decode_batchable, decode_one
from streams.ingest import jsonlogs, otlp, prometheus
from streams.settings import IngestMappings, TopicNames
from tests.harness import (
    RunningWorker,
    eventually,
    every_input_consumed,
    new_worker,
    produce,
    read_all,
)

pytestmark = pytest.mark.broker

REPO = str(Path(__file__).resolve().parents[2])
LIMIT = 1_048_576
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- a raw HTTP/1.1 client: full control over the bytes of the path, headers and body ---------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


async def http(
    worker: RunningWorker,
    method: str,
    target: str | bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes | None = None,
    chunked: bool = False,
) -> Reply:
    """One request on a fresh connection (``Connection: close``), read to the end."""
    port = int(worker.base_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    path = target.encode() if isinstance(target, str) else target
    head = [f"{method} ".encode() + path + b" HTTP/1.1", f"Host: 127.0.0.1:{port}".encode()]
    head += [b"Connection: close"] + [k + b": " + v for k, v in headers or []]
    if body is not None and chunked:
        head.append(b"Transfer-Encoding: chunked")
        body = (
            b"".join(
                f"{len(part):x}\r\n".encode() + part + b"\r\n"
                for part in (body[i : i + 65536] for i in range(0, len(body), 65536))
            )
            + b"0\r\n\r\n"
        )
    elif body is not None:
        head.append(f"Content-Length: {len(body)}".encode())
    try:
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + (body or b""))
        await writer.drain()
    except (ConnectionResetError, BrokenPipeError):
        pass  # the server answered before reading the whole body: read what it said
    try:
        raw = await asyncio.wait_for(reader.read(), timeout=30)
    except ConnectionResetError:
        raw = b""
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 "), f"no HTTP answer to {method} {path!r}: {raw!r}"
    head_raw, _, payload = rest.partition(b"\r\n\r\n")
    fields = {}
    for line in head_raw.split(b"\r\n"):
        name, _, value = line.decode("latin-1").partition(":")
        fields[name.strip().lower()] = value.strip()
    if fields.get("transfer-encoding") == "chunked":
        payload = _dechunk(payload)
    return Reply(int(status_line.split()[1]), fields, payload)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def check(reply: Reply, what: str) -> Any:
    """The properties every answer has; returns the parsed JSON body of a 4xx (else None)."""
    text = reply.body.decode("utf-8", errors="replace")
    assert 200 <= reply.status < 500, f"{what}: {reply.status} {text[:500]}"
    assert "Traceback" not in text, what
    assert REPO not in text and "site-packages" not in text and 'File "' not in text, what
    if reply.status >= 400:
        assert reply.headers.get("content-type", "").startswith("application/json"), what
        error = json.loads(reply.body)
        assert isinstance(error, dict), what
        assert isinstance(error.get("error"), str) and error["error"].strip(), what
        return error
    return None


# --- one worker for the module, with an incident and a silence to aim at ------------------------


class Live:
    """The module's worker; its repr (printed with each falsifying example) is short."""

    def __init__(self, worker: RunningWorker) -> None:
        self.worker = worker

    def __repr__(self) -> str:
        return f"Live({self.worker.app_id!r})"


@pytest.fixture(scope="module")
def live(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    worker = new_worker(kafka_bootstrap, tmp_path_factory.mktemp("fuzz-api"), "fuzz-api", None, {})
    worker.start()
    try:
        yield Live(worker)
    finally:
        worker.stop()


def auth(worker: RunningWorker) -> list[tuple[bytes, bytes]]:
    return [(b"Authorization", f"Bearer {worker.token}".encode())]


JSON = [(b"Content-Type", b"application/json")]


@pytest.fixture(scope="module")
async def targets(live: Live) -> AsyncIterator[dict[str, str]]:
    """An open incident's id and an active silence's id on the module's worker."""
    worker = live.worker
    event = {
        "event_action": "trigger",
        "dedup_key": "fuzz-1",
        "payload": {"summary": "fuzz target", "source": "fuzz", "severity": "critical"},
    }
    reply = await http(worker, "POST", "/api/alerts/pagerduty", auth(worker) + JSON,
                       json.dumps(event).encode())  # fmt: skip
    assert reply.status == 202, reply

    async def opened() -> str | None:
        listing = json.loads((await http(worker, "GET", "/api/incidents")).body)
        return listing["incidents"][0]["id"] if listing["incidents"] else None

    incident_id = await eventually(opened, 30, "the target incident")
    silence = {"matchers": {"service": "nothing-fuzz"}, "duration_s": 3600, "comment": "fuzz"}
    reply = await http(worker, "POST", "/api/silences", auth(worker) + JSON,
                       json.dumps(silence).encode())  # fmt: skip
    assert reply.status == 201, reply
    yield {"incident": incident_id, "silence": json.loads(reply.body)["id"]}


# --- strategies --------------------------------------------------------------------------------

ODD_IDS = [
    "..", "../..", "../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e%2f", "%00", "%ff%fe",
    "a" * 600, "inc-does-not-exist", "😀" * 30, "\u202e\u0000x", " ", "%", "%%", "?x=1", "#frag",
    "/api/incidents", "C:\\Windows\\win.ini", "null", "[]", "{}", "-1", "1e400",
]  # fmt: skip
QUERY_KEYS = [
    "status",
    "service",
    "limit",
    "offset",
    "since",
    "until",
    "dimension",
    "value",
    "window",
    "state",
    "chart",
    "x",
    "at",
    "schedule",
    "person",
    "weeks",
    "incident",
]
TIMES = [
    "2024-13-45T99:99:99Z", "yesterday", "", "1970-01-01", "2026-01-01T00:00:00Z", "-1e400",
    "NaN", -1, 0, 10**30, -(10**30), 1.5e12, 1_700_000_000, True, None, [], {},
]  # fmt: skip
BODY_KEYS = [
    "actor", "text", "at", "severity", "role", "person", "matchers", "comment", "ends_at",
    "starts_at", "duration_s", "until_resolved", "maintenance", "created_by", "alerts", "status",
    "labels", "startsAt", "event_action", "routing_key", "dedup_key", "payload", "summary",
    "source", "timestamp", "version", "schedule", "start", "end", "links", "custom_details",
    "service",
]  # fmt: skip

ids = st.one_of(st.text(max_size=200), st.sampled_from(ODD_IDS))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40),
    st.sampled_from(TIMES[:7]), st.sampled_from(["SEV1", "SEV9", "commander", "firing",
                                                 "trigger", "acknowledge", "resolve"]),
)  # fmt: skip
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(BODY_KEYS), st.text(max_size=8)), inner, max_size=6
        ),
    ),
    max_leaves=25,
)
json_objects = st.dictionaries(st.sampled_from(BODY_KEYS), documents, max_size=6)


@st.composite
def bodies(draw: st.DrawFn) -> bytes | None:
    """A request body: JSON that may be wrong in type or shape, or bytes that are not JSON."""
    kinds = ["none", "object", "any", "bytes", "broken", "surrogate", "time", "deep"]
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        return None
    if kind == "deep":  # nested deeper than the JSON parser's recursion limit
        depth = draw(st.integers(min_value=1, max_value=60_000))
        return b'{"matchers": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == "object":
        return json.dumps(draw(json_objects)).encode()
    if kind == "any":
        return json.dumps(draw(documents)).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "time":
        field = draw(st.sampled_from(["at", "starts_at", "ends_at", "startsAt", "timestamp",
                                      "start", "end"]))  # fmt: skip
        return json.dumps({field: draw(st.sampled_from(TIMES)), "matchers": {"a": "b"}}).encode()
    raw = json.dumps(draw(json_objects)).encode()
    if kind == "surrogate":  # lone surrogates are valid JSON escapes, but not valid text
        return raw.replace(b"{", b'{"actor": "\\ud800", "text": "\\udfff x", ', 1).replace(
            b", }", b"}"
        )
    cut = draw(st.integers(min_value=0, max_value=len(raw)))
    return raw[:cut] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b""]))


@st.composite
def credentials(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(["none", "valid", "wrong", "basic", "empty", "lower", "junk"]))


def auth_headers(worker: RunningWorker, kind: str) -> list[tuple[bytes, bytes]]:
    token = worker.token.encode()
    return {
        "none": [],
        "valid": [(b"Authorization", b"Bearer " + token)],
        "lower": [(b"Authorization", b"bearer " + token)],
        "wrong": [(b"Authorization", b"Bearer " + token[:-1] + b"x")],
        "basic": [(b"Authorization", b"Basic " + base64.b64encode(b"u:" + token))],
        "empty": [(b"Authorization", b"Bearer ")],
        "junk": [(b"Authorization", b"Bearer \xff\xfe" + token + b"\xc3\x28")],
    }[kind]


def segment(value: str, raw: bool) -> str:
    """A path segment: percent-encoded, or with ``/``, ``.`` and ``%`` left as they are."""
    return quote(value, safe="/.%" if raw else "")


# --- HTTP properties ---------------------------------------------------------------------------

GET_PATHS = [
    "/healthz", "/readyz", "/api/incidents", "/api/incidents/{id}", "/api/incidents/{id}/timeline",
    "/api/incidents/{id}/tasks", "/api/incidents/{id}/review", "/api/incidents/{id}/review.svg",
    "/api/mttr", "/api/events", "/api/silences", "/metrics", "/", "/api/overrides", "/api/oncall",
    "/api/schedules/{id}.ics", "/api/people/{id}.ics",
    "/api/changes",
]  # fmt: skip
ACTIONS = ["acknowledge", "mitigate", "resolve", "reopen", "notes", "severity", "roles"]
WRITE_PATHS = [f"/api/incidents/{{id}}/{a}" for a in ACTIONS] + [
    "/api/incidents/{id}/tasks/{task}", "/api/alerts/alertmanager", "/api/alerts/pagerduty",
    "/api/silences", "/api/overrides", "/api/changes", "/api/heartbeats/{id}",
]  # fmt: skip


@FUZZ
@given(
    template=st.sampled_from(GET_PATHS),
    ident=st.one_of(ids, st.just("{incident}")),
    raw=st.booleans(),
    query=st.one_of(
        st.dictionaries(
            st.sampled_from(QUERY_KEYS), st.one_of(st.text(max_size=60), ids), max_size=4
        ).map(urlencode),
        st.sampled_from(
            [
                "",
                "limit=-5",
                "limit=1e9",
                "limit=%ff",
                "status=%zz",
                "a=1&&=&b",
                "chart=../../../etc/passwd",
                "x=" + "%ff" * 200,
                "limit=" + "9" * 400,
            ]
        ),
    ),
)
async def test_get_endpoints_answer_2xx_or_a_json_4xx(
    live: Live, targets: dict[str, str], template: str, ident: str, raw: bool, query: str
) -> None:
    worker = live.worker
    ident = targets["incident"] if ident == "{incident}" else ident
    path = template.replace("{id}", segment(ident, raw))
    target = path + (f"?{query}" if query else "")
    reply = await http(worker, "GET", target)
    if path == "/readyz" and reply.status == 503:
        # Readiness's own answer while the worker's consumer group rebalances (which a loaded
        # machine can bring about mid-run): exactly that JSON, nothing else.
        assert json.loads(reply.body) == {"status": "starting"}, f"GET {target}"
        assert reply.headers.get("content-type", "").startswith("application/json")
        return
    check(reply, f"GET {target}")


@FUZZ
@given(
    template=st.sampled_from(WRITE_PATHS),
    ident=st.one_of(ids, st.just("{incident}")),
    task=ids,
    raw=st.booleans(),
    body=bodies(),
    who=credentials(),
    content_type=st.sampled_from([b"application/json", b"text/plain", b"", None]),
)
async def test_write_endpoints_answer_2xx_or_a_json_4xx(
    live: Live, targets: dict[str, str], template: str, ident: str, task: str,
    raw: bool, body: bytes | None, who: str, content_type: bytes | None,
) -> None:  # fmt: skip
    worker = live.worker
    ident = targets["incident"] if ident == "{incident}" else ident
    path = template.replace("{id}", segment(ident, raw)).replace("{task}", segment(task, raw))
    headers = auth_headers(worker, who)
    if content_type is not None:
        headers.append((b"Content-Type", content_type))
    reply = await http(worker, "POST", path, headers, body)
    error = check(reply, f"POST {path} {who} {body!r:.200}")
    if who in ("none", "wrong", "basic", "empty", "junk") and "pagerduty" not in path:
        # No write without the token (a PagerDuty routing_key may stand in for it).
        assert reply.status in (401, 404), (path, reply.status, error)
        if reply.status == 404:  # a path that matches no route at all
            assert "Not Found" in error["error"], error


@FUZZ
@given(ident=st.one_of(ids, st.just("{silence}")), raw=st.booleans(), who=credentials(),
       body=bodies())  # fmt: skip
async def test_delete_silence_answers_2xx_or_a_json_4xx(
    live: Live, targets: dict[str, str], ident: str, raw: bool, who: str, body: bytes | None
) -> None:
    worker = live.worker
    ident = targets["silence"] if ident == "{silence}" else ident
    path = f"/api/silences/{segment(ident, raw)}"
    reply = await http(worker, "DELETE", path, auth_headers(worker, who), body)
    check(reply, f"DELETE {path} {who}")
    if who not in ("valid", "lower"):  # the scheme is case-insensitive
        assert reply.status in (401, 404), (path, reply.status)


@FUZZ
@given(
    method=st.sampled_from(["PUT", "PATCH", "DELETE", "POST", "GET", "OPTIONS"]),
    path=st.sampled_from(["/api/incidents", "/api/mttr", "/api/nope", "/healthz", "/api/alerts",
                          "/api/incidents/x/y/z", "/static/../../pyproject.toml", "/%2e%2e/"]),
)  # fmt: skip
async def test_unknown_routes_and_methods_are_json_4xx(live: Live, method: str, path: str) -> None:
    worker = live.worker
    reply = await http(worker, method, path, auth(worker))
    check(reply, f"{method} {path}")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("template", [*WRITE_PATHS, "/api/incidents/{id}/bogus"])
async def test_bodies_over_the_limit_get_413_with_a_json_error(
    live: Live, targets: dict[str, str], template: str, chunked: bool
) -> None:
    worker = live.worker
    path = template.replace("{id}", targets["incident"]).replace("{task}", "t1")
    body = b'{"text": "' + b"x" * LIMIT + b'"}'
    reply = await http(worker, "POST", path, auth(worker) + JSON, body, chunked=chunked)
    error = check(reply, f"POST {path} with {len(body)} bytes")
    if template.endswith("bogus"):  # no such action: refused before the body is read
        assert reply.status == 404, reply
    else:
        assert reply.status == 413, reply
        assert error is not None and "too large" in error["error"].lower()


@pytest.mark.parametrize("template", WRITE_PATHS)
async def test_bodies_nested_too_deeply_get_400(
    live: Live, targets: dict[str, str], template: str
) -> None:
    worker = live.worker
    path = template.replace("{id}", targets["incident"]).replace("{task}", "t1")
    body = b'{"matchers": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    reply = await http(worker, "POST", path, auth(worker) + JSON, body)
    error = check(reply, f"POST {path} nested 100000 deep")
    assert reply.status == 400 and "JSON" in error["error"], error


async def test_the_event_stream_answers_with_any_query(live: Live) -> None:
    worker = live.worker
    port = int(worker.base_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/stream?x=%ff%00&limit=-1 HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    hello = await asyncio.wait_for(reader.readuntil(b"\n\n"), timeout=10)
    writer.close()
    assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
    assert b"event: hello" in hello


# --- inbound topics ----------------------------------------------------------------------------

MAPPINGS = IngestMappings()
DECODERS: dict[str, Callable[[bytes], Decoded[Any]]] = {
    "metrics": lambda raw: decode_batchable(raw, MetricPoint, "points"),
    "logs": lambda raw: decode_batchable(raw, LogRecord, "records"),
    "detections": lambda raw: decode_one(raw, Detection),
    "commands": lambda raw: decode_one(raw, Command),
    "events": lambda raw: decode_one(raw, IncidentEvent),
    "pages": lambda raw: decode_one(raw, Page),
    "contributions": lambda raw: decode_one(raw, MttrContribution),
    "otlp_metrics": lambda raw: otlp.decode_metrics(raw, MAPPINGS),
    "otlp_logs": lambda raw: otlp.decode_logs(raw, MAPPINGS),
    "prometheus": lambda raw: prometheus.decode(raw, MAPPINGS),
    "json_logs": lambda raw: jsonlogs.decode(raw, MAPPINGS, fallback_ts=1_700_000_000.0),
}
INBOUND = [n for n, t in TopicNames().model_dump().items() if t in TopicNames().inbound()]


def plainly_bad(raw: bytes) -> bool:
    """Not a UTF-8 JSON object: no inbound topic takes it (the oracle for topics without one)."""
    try:
        return not isinstance(json.loads(raw), dict)
    except (ValueError, RecursionError):
        return True


TOPIC_KEYS = [
    "ts", "service", "metric", "value", "labels", "points", "records", "level", "message",
    "timestamp", "resourceMetrics", "resourceLogs", "id", "kind", "incident_id", "routing_key",
    "seq", "at", "dedup_key", "samples", "name",
]  # fmt: skip
topic_documents = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
              st.sampled_from(TIMES[:7])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(TOPIC_KEYS), st.text(max_size=6)), inner,
                        max_size=6),
    ),
    max_leaves=20,
)  # fmt: skip
messages = st.one_of(
    st.binary(max_size=400),
    topic_documents.map(lambda d: json.dumps(d).encode()),
    topic_documents.map(lambda d: json.dumps(d).encode()[:-1] + b"\xff"),
    st.sampled_from([b"", b"\xff\xfe\xfd", b"[" * 5000, b'{"ts": 1e400}', b"null",
                     b'{"points": [1, "x", null]}', b"\x0a\x02\x08\x01" * 50]),
)  # fmt: skip


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(messages, min_size=12, max_size=12))
async def test_fuzzed_bytes_on_every_inbound_topic_are_dead_lettered_or_processed(
    live: Live, batch: list[bytes]
) -> None:
    worker = live.worker
    run = uuid.uuid4().hex[:8]
    for name in INBOUND:
        sent = [(f"fz-{run}-{i}".encode(), value) for i, value in enumerate(batch)]
        await produce(worker.bootstrap, getattr(worker.topics, name), sent)
    for name in INBOUND:
        topic = getattr(worker.topics, name)

        await every_input_consumed(worker, [topic], 60)
        letters = [
            d
            for d in await read_all(worker.bootstrap, TopicNames.dlq(topic))
            if base64.b64decode(d["key_b64"] or "").decode().startswith(f"fz-{run}-")
        ]
        for letter in letters:
            assert letter["source_topic"] == topic
            assert isinstance(letter["error"], str) and letter["error"].strip(), letter
        lettered = {base64.b64decode(d["key_b64"]).decode() for d in letters}
        decode = DECODERS.get(name)
        for i, value in enumerate(batch):
            bad = decode(value).rejected if decode is not None else plainly_bad(value)
            if bad:
                assert f"fz-{run}-{i}" in lettered, (name, value[:200])
    assert worker.proc is not None and worker.proc.poll() is None
    assert (await http(worker, "GET", "/readyz")).status == 200


# --- afterwards --------------------------------------------------------------------------------


async def test_the_worker_is_alive_ready_and_logged_no_unhandled_error(
    live: Live,
) -> None:
    """Runs last in the module: the fuzzing above neither killed nor wedged the worker."""
    worker = live.worker
    assert worker.proc is not None and worker.proc.poll() is None
    assert (await http(worker, "GET", "/readyz")).status == 200
    assert (await http(worker, "GET", "/healthz")).status == 200
    log = worker.log_text()
    assert "unhandled error serving" not in log, worker.log_tail()
    # No consumer stuck on a poison message (it would log this every few seconds, forever).
    assert "consumer failed" not in log, [ln for ln in log.splitlines() if "failed" in ln][:3]
    assert "Traceback" not in log, worker.log_tail(200)
