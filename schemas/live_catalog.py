"""``catalog.v1`` (compacted, one partition): the catalog in force, and on-call overrides taken at
run time.

Two kinds of record share the topic, told apart by their key: ``catalog`` holds the latest
:class:`CatalogRevision` (written by ``warroom config apply``), and ``override/<id>`` one
:class:`ShiftOverride` each (written by ``POST /api/overrides``; a tombstone deletes it). A
revision's version is its offset on the topic, so versions only grow, whoever writes them.

>>> catalog_digest(Catalog()) == catalog_digest(Catalog.model_validate({}))
True
>>> len(catalog_digest(Catalog()))
64
"""

from __future__ import annotations

import hashlib
import json
from typing import Self

from pydantic import Field, model_validator

from schemas.catalog import Catalog
from schemas.common import Name, Timestamp, WireModel

#: The key of the catalog record on ``catalog.v1``.
CATALOG_KEY = b"catalog"
#: The key prefix of the override records on ``catalog.v1``.
OVERRIDE_PREFIX = "override/"


def catalog_digest(catalog: Catalog) -> str:
    """The SHA-256 of the catalog's canonical JSON: the same content has the same digest,
    whatever the order or layout of the YAML it came from."""
    text = json.dumps(catalog.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class CatalogRevision(WireModel):
    """One applied catalog: the whole catalog, its digest, who applied it and when."""

    digest: str = Field(min_length=64, max_length=64)
    applied_at: Timestamp
    applied_by: Name
    catalog: Catalog

    @model_validator(mode="after")
    def _digest_matches(self) -> Self:
        if catalog_digest(self.catalog) != self.digest:
            raise ValueError("digest does not match the catalog")
        return self


class ShiftOverride(WireModel):
    """``person`` takes the on-call of ``schedule`` from ``start`` to ``end``, above its layers
    (as a catalog ``overrides`` entry does). A swap is two of them."""

    id: Name
    schedule: Name
    person: Name
    start: Timestamp
    end: Timestamp
    created_by: Name
    created_at: Timestamp
    comment: str = Field(default="", max_length=1000)

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    @property
    def key(self) -> bytes:
        """Its key on ``catalog.v1``."""
        return f"{OVERRIDE_PREFIX}{self.id}".encode()
