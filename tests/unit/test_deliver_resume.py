"""When ``deliver_pages`` may resume a pending delivery: once its partition of
``mobilization.deliveries.v1`` has been processed up to the end it had when the delivery was
found pending (``responders.delivery.read_past``)."""

from __future__ import annotations

from responders.delivery import read_past


def test_not_before_the_stream_has_read_to_the_end() -> None:
    assert not read_past(done=None, committed=4, end=9)
    assert not read_past(done=7, committed=4, end=9)
    assert read_past(done=8, committed=4, end=9)
    assert read_past(done=None, committed=None, end=0)


def test_a_partition_given_away_and_back_counts_what_its_other_owner_committed() -> None:
    # This worker read the partition to offset 100, gave it away at a rebalance; the other
    # owner processed it to its end (151) and committed, handed a page to its lane and stopped
    # before the page was sent. The partition is back here, with nothing new to read: what this
    # worker read before it went away must not hold the resume back for ever.
    assert read_past(done=100, committed=151, end=151)
