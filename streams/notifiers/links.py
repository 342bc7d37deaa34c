"""Links a page's reader follows: the incident (from a URL template) and the runbook in its body.

>>> links_for("Down. Runbook: https://rb.example/checkout.", "inc-1", "https://w.example/i/{incident_id}")
[('Incident', 'https://w.example/i/inc-1'), ('Runbook', 'https://rb.example/checkout')]
"""

from __future__ import annotations

import re
from urllib.parse import quote

_RUNBOOK = re.compile(r"Runbook: (https?://[^\s<>\"]+)")


def links_for(body: str, incident_id: str, incident_url: str | None) -> list[tuple[str, str]]:
    """(label, URL) pairs: the incident if a template (with ``{incident_id}``) is configured,
    then the runbook that ``responders.paging`` appends to a page's body."""
    links = []
    if incident_url:
        links.append(("Incident", incident_url.format(incident_id=quote(incident_id, safe=""))))
    links += [("Runbook", url.rstrip(".,;)")) for url in _RUNBOOK.findall(body)]
    return links
