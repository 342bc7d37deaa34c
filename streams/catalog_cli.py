"""``warroom config check FILE`` and ``warroom config apply FILE``: validate a catalog, and put it
in force on every worker through ``catalog.v1``.

``apply`` runs the same checks as ``check`` first; a catalog that fails any of them is refused
whole, with the field and the problem, and nothing is written. One that passes is written as a
new revision (unless the topic's newest already has the same content) and every worker applies
it between two inputs.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from schemas import Catalog, format_errors
from schemas.live_catalog import CATALOG_KEY, CatalogRevision, catalog_digest

if TYPE_CHECKING:
    from streams.settings import Settings

#: Seconds ``apply`` waits for the broker to read the topic's newest catalog.
READ_TIMEOUT_S = 20.0
#: Bytes a revision may take as JSON: one Kafka record, whose default limit is about 1 MB.
MAX_REVISION_BYTES = 900_000


def checked(path: Path) -> tuple[Catalog | None, str]:
    """The catalog in ``path`` and a one-line summary, or None and the reason it is refused."""
    from responders.paging import unroutable
    from streams.app import ConfigError, load_catalog

    try:
        catalog = load_catalog(path)
    except ConfigError as exc:
        return None, str(exc)
    gaps = unroutable(catalog)
    if gaps:
        return None, (
            "fallback_policy: required, since an incident could page nobody: "
            + "; ".join(gaps)
            + " (name an escalation policy as fallback_policy, or close the gaps)"
        )
    counts = [
        (len(catalog.services), "service", "services"),
        (len(catalog.teams), "team", "teams"),
        (len(catalog.people), "person", "people"),
        (len(catalog.schedules), "schedule", "schedules"),
        (len(catalog.escalation_policies), "escalation policy", "escalation policies"),
        (len(catalog.runbooks), "runbook", "runbooks"),
    ]
    return catalog, ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in counts)


def check(args: argparse.Namespace) -> int:
    catalog, said = checked(Path(args.catalog))
    if catalog is None:
        print(f"invalid: {said}", file=sys.stderr)
        return 1
    print(f"ok: {said}")
    return 0


def apply(args: argparse.Namespace) -> int:
    catalog, said = checked(Path(args.catalog))
    if catalog is None:
        print(f"refused, nothing applied: {said}", file=sys.stderr)
        return 1
    from aiokafka.errors import KafkaError

    from streams.cli import setting_errors
    from streams.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"warroom config apply: invalid settings: {setting_errors(exc)}", file=sys.stderr)
        return 2
    try:
        revision = CatalogRevision(
            digest=catalog_digest(catalog),
            applied_at=datetime.now(tz=UTC),
            applied_by=args.by or _login(),
            catalog=catalog,
        )
    except ValidationError as exc:  # the catalog passed its checks: what is left is --by
        said = format_errors(exc).removeprefix("applied_by: ")
        print(f"refused, nothing applied: --by: {said}", file=sys.stderr)
        return 1
    size = len(revision.model_dump_json().encode())
    if size > MAX_REVISION_BYTES:
        print(f"refused, nothing applied: the catalog takes {size:,} bytes as JSON, more than "
              f"one record holds ({MAX_REVISION_BYTES:,})", file=sys.stderr)  # fmt: skip
        return 1
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # an unreachable broker: said below
    try:
        message = asyncio.run(_apply(settings, revision))
    except (KafkaError, TimeoutError, OSError) as exc:
        print(
            f"warroom config apply: no catalog written: the broker at "
            f"{settings.bootstrap_servers} (WARROOM_BOOTSTRAP_SERVERS) did not take it: "
            f"{_said(exc)}",
            file=sys.stderr,
        )
        return 2
    print(f"{message}: {said}")
    return 0


def _login() -> str:
    """Who runs the command, for a revision's ``applied_by``; ``warroom`` when it cannot be told
    (no user name in the environment and no password entry, as in some containers)."""
    try:
        return getpass.getuser() or "warroom"
    except (KeyError, OSError):
        return "warroom"


def _said(exc: BaseException) -> str:
    """``exc`` in one line, its type named once (aiokafka's messages often start with it)."""
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name


async def _apply(settings: Settings, revision: CatalogRevision) -> str:
    from streams.live_catalog import ensure_catalog_topic, publish, read_live

    await asyncio.wait_for(ensure_catalog_topic(settings), READ_TIMEOUT_S)
    current = await read_live(settings, Catalog(), READ_TIMEOUT_S)
    if current.revision is not None and current.revision.digest == revision.digest:
        return f"unchanged: version {current.version} has this content already"
    offset = await publish(settings, CATALOG_KEY, revision.model_dump_json().encode())
    before = f", replacing version {current.version}" if current.version is not None else ""
    return f"applied: version {offset} (digest {revision.digest[:12]}){before}"


def load_for_command(path: str | None, prog: str) -> Catalog | None:
    """The catalog a command works on: ``path`` if given; else, when ``WARROOM_BOOTSTRAP_SERVERS``
    is set, the live catalog on ``catalog.v1`` (overrides included) if the topic has one; else
    ``WARROOM_CATALOG_PATH``. Says which on stderr; on a problem says why and returns None."""
    import os

    from streams.app import catalog_for_command

    if path or not os.environ.get("WARROOM_BOOTSTRAP_SERVERS"):
        return catalog_for_command(path, prog)
    from streams.live_catalog import read_live
    from streams.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"{prog}: invalid settings: {format_errors(exc, 'WARROOM')}", file=sys.stderr)
        return None
    try:
        live = asyncio.run(read_live(settings, Catalog(), READ_TIMEOUT_S))
    except Exception as exc:  # the broker is down, the topic unreadable: say so, use the file
        print(f"{prog}: could not read {settings.topics.catalog} ({type(exc).__name__}); "
              "using the catalog file", file=sys.stderr)  # fmt: skip
        return catalog_for_command(path, prog)
    if live.revision is None:
        from responders.oncall import with_overrides

        print(f"{prog}: {settings.topics.catalog} has no catalog yet; using the catalog file "
              f"with {len(live.overrides)} run-time override(s)", file=sys.stderr)  # fmt: skip
        found = catalog_for_command(path, prog)
        return with_overrides(found, live.overrides.values()) if found is not None else None
    print(f"{prog}: live catalog {live.in_force.describe()} from {settings.topics.catalog}, "
          f"{len(live.overrides)} run-time override(s)", file=sys.stderr)  # fmt: skip
    return live.in_force.catalog
