"""``warroom declare|ack|mitigate|resolve|reopen|note|assign|add-responder|silence`` and
``warroom token create|revoke``: act on incidents from the terminal, through a running worker's
HTTP API (``--api``).

The token comes from ``WARROOM_TOKEN`` (a person's own), else ``WARROOM_API_TOKEN``, else the
first line of ``--token-file`` (default ``~/.config/warroom/token``). With a personal token the
worker records its person as the actor; ``--as NAME`` names the actor of the shared token (sent
as ``X-Warroom-Actor``). Every write carries a fresh ``Idempotency-Key`` and is sent once more,
under the same key, if the first attempt got no answer or a 5xx: the worker writes it once either
way.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

DEFAULT_API = "http://127.0.0.1:8080"
ACTOR_HEADER = "X-Warroom-Actor"
DEFAULT_TOKEN_FILE = Path("~/.config/warroom/token")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class RespondError(Exception):
    """A failure to report on one line (no token, unreachable API, bad argument)."""


def token(token_file: str | None) -> str:
    """The caller's token: ``WARROOM_TOKEN``, ``WARROOM_API_TOKEN`` or the token file."""
    for name in ("WARROOM_TOKEN", "WARROOM_API_TOKEN"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    path = Path(token_file).expanduser() if token_file else DEFAULT_TOKEN_FILE.expanduser()
    try:
        lines = path.read_text().splitlines()
    except OSError:
        lines = []
    if lines and lines[0].strip():
        return lines[0].strip()
    raise RespondError(
        f"no token: set WARROOM_TOKEN, or put it on the first line of {path} (--token-file)"
    )


def duration_s(text: str) -> float:
    """``90s``, ``15m``, ``2h``, ``1d`` in seconds.

    >>> duration_s("15m"), duration_s("1.5h")
    (900.0, 5400.0)
    """
    found = _DURATION.match(text.strip())
    if found is None or float(found.group(1)) <= 0:
        raise RespondError(f"--for: a duration such as 30m, 2h or 1d, not {text!r}")
    return float(found.group(1)) * _UNIT_S[found.group(2)]


def post(
    api: str,
    path: str,
    body: dict[str, Any] | None,
    bearer: str,
    actor: str | None = None,
    method: str = "POST",
) -> tuple[int, dict[str, Any]]:
    """Send JSON with an idempotency key; once more under the same key if no answer or 5xx."""
    url = api.rstrip("/") + path
    if not url.startswith(("http://", "https://")):
        raise RespondError(f"the API address must be an http(s) URL, not {api!r}")
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {bearer}",
        "Idempotency-Key": uuid.uuid4().hex,
    }
    if actor:
        headers[ACTOR_HEADER] = actor
    data = json.dumps(body).encode() if body is not None else None
    problem = ""
    for _ in range(2):
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310
                return int(response.status), _json(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return exc.code, _json(exc.read())
            problem = f"HTTP {exc.code}: {_json(exc.read()).get('error', '')}"
        except (urllib.error.URLError, OSError) as exc:
            problem = f"cannot reach the API at {api}: {getattr(exc, 'reason', exc)}"
    raise RespondError(problem)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        loaded = json.loads(raw or b"{}")
    except ValueError:
        return {"error": raw.decode("utf-8", "replace")[:200]}
    return loaded if isinstance(loaded, dict) else {"value": loaded}


def request_for(args: argparse.Namespace) -> tuple[str, dict[str, Any], int]:
    """The API path, body and the success status of a command's arguments."""
    quote = urllib.parse.quote
    command = args.command
    if command == "declare":
        body = {"service": args.service, "title": args.title, "severity": args.severity,
                "text": args.text}  # fmt: skip
        return "/api/incidents", body, 202
    incident = f"/api/incidents/{quote(args.incident_id, safe='')}"
    if command in ("ack", "mitigate", "resolve", "reopen"):
        action = "acknowledge" if command == "ack" else command
        return f"{incident}/{action}", {"text": args.text}, 202
    if command == "note":
        return f"{incident}/notes", {"text": args.text}, 202
    if command == "assign":
        return f"{incident}/roles", {"role": args.role, "person": args.person}, 202
    if command == "add-responder":
        body = {"person": args.person, "team": args.team, "schedule": args.schedule,
                "text": args.text}  # fmt: skip
        return f"{incident}/responders", body, 202
    raise RespondError(f"unknown command {command!r}")


def silence_request(args: argparse.Namespace) -> tuple[str, dict[str, Any], int]:
    matchers = []
    for given in args.match:
        name, op, value = _matcher(given)
        matchers.append({"name": name, "value": value, "regex": op == "=~"})
    body: dict[str, Any] = {"matchers": matchers, "comment": args.comment}
    if args.until_resolved:
        body["until_resolved"] = args.until_resolved
    else:
        body["duration_s"] = duration_s(args.duration)
    return "/api/silences", body, 201


def _matcher(text: str) -> tuple[str, str, str]:
    found = re.match(r"^([A-Za-z_][A-Za-z0-9_.-]*)(=~|=)(.*)$", text)
    if found is None:
        raise RespondError(f"--match: NAME=VALUE or NAME=~REGEX, not {text!r}")
    return found.group(1), found.group(2), found.group(3)


def token_request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None, int]:
    """``warroom token create|revoke PERSON``: the method, path, body and success status."""
    if args.token_command == "create":  # noqa: S105 (a subcommand, not a password)
        return "POST", "/api/tokens", {"person": args.person}, 201
    return "DELETE", f"/api/tokens/{urllib.parse.quote(args.person, safe='')}", None, 200


def main(args: argparse.Namespace) -> int:
    name = f"warroom {args.command}"
    method = "POST"
    try:
        bearer = token(args.token_file)
        if args.command == "token":
            name = f"warroom token {args.token_command}"
            method, path, body, ok = token_request(args)
        elif args.command == "silence":
            path, body, ok = silence_request(args)
        else:
            path, body, ok = request_for(args)
        api = args.api or os.environ.get("WARROOM_API_URL") or DEFAULT_API
        sent = {k: v for k, v in body.items() if v is not None} if body is not None else None
        status, answer = post(api, path, sent, bearer, args.actor, method)
    except RespondError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    if status != ok:
        print(f"{name}: HTTP {status}: {answer.get('error', answer)}", file=sys.stderr)
        return 1
    print(_summary(args.command, answer))
    return 0


def _summary(command: str, answer: dict[str, Any]) -> str:
    if command == "token":
        if "token" in answer:
            return str(answer["token"])
        revoked = answer.get("revoked") or []
        return f"revoked {len(revoked)} token(s) of {answer.get('person')}"
    if command == "declare":
        joined = " (joined the open incident)" if answer.get("joined_open_incident") else ""
        return f"declared {answer.get('incident_id')}{joined}"
    if command == "silence":
        return f"silence {answer.get('id')} {answer.get('state', '')}".rstrip()
    return f"{command}: {answer.get('incident_id')} (command {answer.get('command_id')})"


def add_arguments(sub: Any, func: Any) -> None:
    """The commands, on the CLI's subparsers ``sub``; each runs ``func``."""

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--api", help=f"the worker's HTTP API (default: $WARROOM_API_URL, else {DEFAULT_API})"
        )
        parser.add_argument("--token-file", help=f"token file (default {DEFAULT_TOKEN_FILE})")
        parser.add_argument(
            "--as", dest="actor",
            help="who acts, with the shared token (a personal token acts as its person)",
        )  # fmt: skip
        parser.set_defaults(func=func)

    declare = sub.add_parser("declare", help="open an incident by hand")
    declare.add_argument("service")
    declare.add_argument("--title", required=True, help="what is wrong, in a line")
    declare.add_argument("--severity", default="SEV2", choices=["SEV1", "SEV2", "SEV3", "SEV4"])
    declare.add_argument("--text", help="what is known so far")
    common(declare)
    for name, what in (("ack", "acknowledge an incident"),
                       ("mitigate", "mark an incident's service restored"),
                       ("resolve", "mark an incident resolved: its permanent fix is in"),
                       ("reopen", "reopen an incident")):  # fmt: skip
        parser = sub.add_parser(name, help=what)
        parser.add_argument("incident_id", metavar="ID")
        parser.add_argument("--text", help="a note with it")
        common(parser)
    note = sub.add_parser("note", help="add a note to an incident's timeline")
    note.add_argument("incident_id", metavar="ID")
    note.add_argument("text", help="the note (follow-up: or TODO makes it a follow-up)")
    common(note)
    assign = sub.add_parser("assign", help="give a person a role in an incident")
    assign.add_argument("incident_id", metavar="ID")
    assign.add_argument(
        "role", choices=["commander", "scribe", "communications", "responder",
                         "subject_matter_expert"],
    )  # fmt: skip
    assign.add_argument("person")
    common(assign)
    added = sub.add_parser("add-responder", help="page a person, team or schedule in now")
    added.add_argument("incident_id", metavar="ID")
    whom = added.add_mutually_exclusive_group(required=True)
    whom.add_argument("--person", help="a person of the catalog")
    whom.add_argument("--team", help="a team: its schedule's on-call, else its members")
    whom.add_argument("--schedule", help="a schedule: who is on call now")
    added.add_argument("--text", help="why they are needed")
    common(added)
    tokens = sub.add_parser("token", help="personal API tokens (needs an admin token)")
    tokens_sub = tokens.add_subparsers(dest="token_command", required=True)
    create = tokens_sub.add_parser("create", help="a new token for a person; printed once")
    create.add_argument("person", help="a person of the catalog")
    common(create)
    revoke = tokens_sub.add_parser("revoke", help="revoke every token of a person")
    revoke.add_argument("person", help="a person of the catalog")
    common(revoke)
    silence = sub.add_parser("silence", help="silence matching detections for a while")
    silence.add_argument("--match", action="append", required=True, metavar="NAME=VALUE",
                         help="a matcher: NAME=VALUE or NAME=~REGEX (repeatable)")  # fmt: skip
    span = silence.add_mutually_exclusive_group(required=True)
    span.add_argument("--for", dest="duration", metavar="DURATION", help="30m, 2h, 1d")
    span.add_argument("--until-resolved", metavar="ID", help="until this incident is resolved")
    silence.add_argument("--comment", required=True, help="why")
    common(silence)
