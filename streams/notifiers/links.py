"""Links a page's reader follows: the incident's page (``public_url`` + ``/incidents/{id}``) and
the runbook the catalog gives the incident's service; for a digest, each incident it lists.

Links come only from settings and the catalog, never from alert text: a signal named
"Runbook: https://evil.example" stays text. Only ``http`` and ``https`` URLs are linked.

>>> from datetime import UTC, datetime
>>> from schemas import Channel, Page, Severity
>>> page = Page(dedup_key="k", incident_id="inc-1", routing_key="api", step=0, recipient="ann",
...     channel=Channel.EMAIL, address="ann@example.com", severity=Severity.SEV2,
...     subject="s", body="Down. Runbook: https://evil.example", created_at=datetime(2026, 1, 1,
...     tzinfo=UTC), runbook_url="https://rb.example/checkout")
>>> links_for(page, "https://w.example/i/{incident_id}")
[('Incident', 'https://w.example/i/inc-1'), ('Runbook', 'https://rb.example/checkout')]
>>> digest = page.model_copy(update={"incident_id": "digest", "incidents": ["inc-1", "inc-2"],
...     "runbook_url": None})
>>> links_for(digest, "https://w.example/i/{incident_id}")
[('Incident inc-1', 'https://w.example/i/inc-1'), ('Incident inc-2', 'https://w.example/i/inc-2')]
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from responders.access import LINK_ACTIONS, link_signature
from schemas import Page


def incident_template(base: str) -> str:
    """The link template of an incident's page (``/incidents/{incident_id}``) under ``base``,
    the address people reach this deployment at.

    >>> incident_template("https://warroom.example.com/")
    'https://warroom.example.com/incidents/{incident_id}'
    """
    return f"{base.rstrip('/')}/incidents/{{incident_id}}"


@dataclass(frozen=True)
class ActionLinks:
    """Signed, expiring links that act on a page's incident as its recipient
    (``/act/{incident}/{action}?person=&expires=&sig=``): ``ttl_s`` after the page was made.

    >>> from datetime import UTC, datetime
    >>> from schemas import Channel, Page, Severity
    >>> page = Page(dedup_key="k", incident_id="inc-1", routing_key="api", step=0,
    ...     recipient="ann", channel=Channel.EMAIL, address="ann@example.com",
    ...     severity=Severity.SEV2, subject="s", body="b", created_at=datetime(2026, 1, 1,
    ...     tzinfo=UTC))
    >>> for action, url in ActionLinks("https://w.example/", b"k" * 32, 3600).of(page):
    ...     print(url.partition("&sig=")[0])
    https://w.example/act/inc-1/acknowledge?person=ann&expires=1767229200
    https://w.example/act/inc-1/resolve?person=ann&expires=1767229200
    """

    base_url: str
    key: bytes
    ttl_s: float

    def of(self, page: Page) -> list[tuple[str, str]]:
        """(action, URL) for each action; none for a notice or a digest (nothing to act on)."""
        if page.kind != "page" or page.incidents:
            return []
        expires = int(page.created_at.timestamp() + self.ttl_s)
        base = self.base_url.rstrip("/")
        found = []
        for action in LINK_ACTIONS:
            sig = link_signature(self.key, page.incident_id, action, page.recipient, expires)
            query = urlencode({"person": page.recipient, "expires": expires, "sig": sig})
            found.append(
                (action, f"{base}/act/{quote(page.incident_id, safe='')}/{action}?{query}")
            )
        return found


def links_for(
    page: Page, incident_url: str | None, actions: ActionLinks | None = None
) -> list[tuple[str, str]]:
    """(label, URL) pairs: the incident if a template (with ``{incident_id}``) is configured, or
    each of a digest's ``incidents``; its signed action links (``Acknowledge``, ``Resolve``) when
    ``actions`` is given; then the page's runbook (``Page.runbook_url``, which
    ``responders.paging`` takes from the catalog)."""
    links = []
    if incident_url and page.incidents:
        links += [(f"Incident {i}", _incident(incident_url, i)) for i in page.incidents]
    elif incident_url:
        links.append(("Incident", _incident(incident_url, page.incident_id)))
    if actions is not None:
        links += [(action.capitalize(), url) for action, url in actions.of(page)]
    if page.runbook_url:
        links.append(("Runbook", page.runbook_url))
    return [(label, url) for label, url in links if is_web_url(url)]


def is_web_url(url: str) -> bool:
    """True for an absolute ``http``/``https`` URL with a host and no whitespace or controls.

    >>> [is_web_url(u) for u in ("https://a.example/x", "javascript:alert(1)", "https://a b")]
    [True, False, False]
    """
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _incident(template: str, incident_id: str) -> str:
    return template.format(incident_id=quote(incident_id, safe=""))
