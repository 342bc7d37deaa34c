"""Links a page's reader follows: the incident (from a URL template) and the runbook in its body;
for a digest, each incident it lists.

>>> links_for("Down. Runbook: https://rb.example/checkout.", "inc-1", "https://w.example/i/{incident_id}")
[('Incident', 'https://w.example/i/inc-1'), ('Runbook', 'https://rb.example/checkout')]
>>> links_for("2 held", "digest", "https://w.example/i/{incident_id}", ["inc-1", "inc-2"])
[('Incident inc-1', 'https://w.example/i/inc-1'), ('Incident inc-2', 'https://w.example/i/inc-2')]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote

_RUNBOOK = re.compile(r"Runbook: (https?://[^\s<>\"]+)")


def links_for(
    body: str, incident_id: str, incident_url: str | None, incidents: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """(label, URL) pairs: the incident if a template (with ``{incident_id}``) is configured, or
    each of a digest's ``incidents``; then the runbook that ``responders.paging`` appends to a
    page's body."""
    links = []
    if incident_url and incidents:
        links += [(f"Incident {i}", _incident(incident_url, i)) for i in incidents]
    elif incident_url:
        links.append(("Incident", _incident(incident_url, incident_id)))
    links += [("Runbook", url.rstrip(".,;)")) for url in _RUNBOOK.findall(body)]
    return links


def _incident(template: str, incident_id: str) -> str:
    return template.format(incident_id=quote(incident_id, safe=""))
