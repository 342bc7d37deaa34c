"""``aggregate_mttr``: contributions in, windowed MTTR aggregates out (``aggregates.mttr.v1``).

Keeps each group's rows (one per incident) per tumbling window and a 30-day rolling set in the
``mttr-rows`` table, recomputes the affected windows exactly, stores the latest value of each in
``mttr-latest`` (read by the API and ``/metrics``) and publishes it, keyed by aggregate key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from responders.mttr import ROLLING_ROWS, fold, rolling_aggregates, row_keys, tumbling_aggregate
from schemas import MttrAggregate, MttrContribution
from streams.agents import each_input
from streams.codec import encode

if TYPE_CHECKING:
    from streams.pipeline import Pipeline


def attach(p: Pipeline) -> None:
    rows_table, latest = p.tables.mttr_rows, p.tables.mttr_latest

    async def publish(agg: MttrAggregate) -> None:
        value = agg.model_dump(mode="json")
        latest[agg.key] = value
        p.live.publish("aggregate", value)
        await p.topics.aggregates.send(key=agg.key.encode(), value=encode(agg))

    async def on_contribution(event: Any) -> None:
        c = await p.dead_letters.decoded(event, MttrContribution)
        if c is None:
            return
        for key in row_keys(c):
            rolling = key.endswith(f"|{ROLLING_ROWS}")
            rows = fold(rows_table.get(key) or {}, c, rolling)
            rows_table[key] = rows
            if rolling:
                for agg in rolling_aggregates(c.group, rows):
                    await publish(agg)
            else:
                await publish(tumbling_aggregate(key, rows))

    @p.app.agent(p.topics.contributions, name="aggregate_mttr")
    async def aggregate_mttr(stream: Any) -> None:
        await each_input(p, stream, "aggregate_mttr", on_contribution,
                         stage="aggregate_mttr", errors="aggregate_errors")  # fmt: skip
