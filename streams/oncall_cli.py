"""``warroom oncall SERVICE``: the escalation policy that pages for a service, and who each of
its steps would page if an incident opened at ``--at`` (default: now) and nobody acknowledged.
The catalog is the live one on ``catalog.v1`` (overrides included) when a broker is configured,
else the file (:func:`streams.catalog_cli.load_for_command`)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from pydantic import TypeAdapter, ValidationError

from responders.oncall import escalation_plan, policy_for
from schemas import Timestamp, format_errors


def _offset(seconds: float) -> str:
    """``+0s``, ``+5m``, ``+1h30m``, ``+90s``."""
    whole = int(seconds)
    if whole % 60 or whole == 0:
        return f"+{whole}s"
    hours, minutes = divmod(whole // 60, 60)
    if hours and minutes:
        return f"+{hours}h{minutes}m"
    return f"+{hours}h" if hours else f"+{minutes}m"


def main(args: argparse.Namespace) -> int:
    from streams.catalog_cli import load_for_command

    try:
        at = TypeAdapter(Timestamp).validate_python(args.at) if args.at else datetime.now(UTC)
    except ValidationError as exc:
        print(
            f"warroom oncall: --at: {format_errors(exc).removeprefix('(message): ')}",
            file=sys.stderr,
        )
        return 2
    catalog = load_for_command(args.catalog, "warroom oncall")
    if catalog is None:
        return 2
    found = policy_for(catalog, args.service)
    if found is None:
        print(f"warroom oncall: no escalation policy pages for {args.service!r}", file=sys.stderr)
        return 1
    name, policy = found
    team = catalog.team_for(args.service)
    repeats = f", repeated {policy.repeat}x" if policy.repeat else ""
    print(f"{args.service} (team {team}): policy {name}, {len(policy.steps)} step(s){repeats}")
    print(f"if opened at {at.isoformat()}:")
    for planned in escalation_plan(catalog, args.service, at, args.incident):
        passes, index = divmod(planned.step, len(policy.steps))
        notify = policy.steps[index].notify.replace("_", "-")
        where = f"step {index}" + (f" (pass {passes + 1})" if passes else "")
        who = ", ".join(planned.people) or "(nobody on call)"
        offset = _offset((planned.due_at - at).total_seconds())
        print(f"  {where:<16} {offset:>8}  {planned.due_at.isoformat()}  {notify:<11}  {who}")
    return 0
