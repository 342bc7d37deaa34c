"""The Kafka client's repeated complaints are said once, then once every 30 s with a count."""

from __future__ import annotations

import logging

import pytest

from streams.lognoise import CLIENT_LOGGERS, Repeats, quiet_client_repeats


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(
    msg: str, *args: object, level: int = logging.ERROR, name: str = "aiokafka"
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_a_repeated_complaint_is_let_through_once_a_window_with_the_count_held_back() -> None:
    clock = Clock()
    f = Repeats(every_s=30.0, clock=clock)
    said = []
    for i in range(600):  # a minute of the broker being away: every 100 ms
        clock.now = i * 0.1
        r = record("Unable connect to node with id %s: %s", 1, "refused")
        if f.filter(r):
            said.append((clock.now, r.getMessage()))
    assert [round(t, 1) for t, _ in said] == [0.0, 30.0]
    assert said[0][1] == "Unable connect to node with id 1: refused"
    assert said[1][1] == (
        "Unable connect to node with id 1: refused (299 more like it held back in the last 30 s)"
    )


def test_each_template_and_logger_has_its_own_window_and_info_always_passes() -> None:
    f = Repeats(every_s=30.0, clock=Clock())
    assert f.filter(record("Failed fetch offsets from %s: %s", 1, "NotLeader p0"))
    assert not f.filter(record("Failed fetch offsets from %s: %s", 1, "NotLeader p1"))
    assert f.filter(record("Group Coordinator Request failed: %s", "15"))
    assert f.filter(
        record("Failed fetch offsets from %s: %s", 1, "x", name="aiokafka.consumer.fetcher")
    )
    assert all(f.filter(record("joined %s", g, level=logging.INFO)) for g in range(5))


def test_a_message_with_a_percent_sign_and_no_arguments_is_kept_whole() -> None:
    clock = Clock()
    f = Repeats(every_s=1.0, clock=clock)
    assert f.filter(record("100% of partitions lost"))
    assert not f.filter(record("100% of partitions lost"))
    clock.now = 2.0
    r = record("100% of partitions lost")
    assert f.filter(r)
    assert r.getMessage() == "100% of partitions lost (1 more like it held back in the last 2 s)"


def test_every_client_logger_gets_one_filter_however_often_it_is_put(
    caplog: pytest.LogCaptureFixture,
) -> None:
    quiet_client_repeats()
    quiet_client_repeats()
    for name in CLIENT_LOGGERS:
        assert sum(isinstance(f, Repeats) for f in logging.getLogger(name).filters) == 1
    with caplog.at_level(logging.ERROR, logger="aiokafka.consumer.fetcher"):
        for _ in range(50):
            logging.getLogger("aiokafka.consumer.fetcher").error("Failed fetch messages from %s", 1)
    assert len(caplog.records) == 1
    for name in CLIENT_LOGGERS:  # leave the loggers as they were
        logger = logging.getLogger(name)
        for f in [f for f in logger.filters if isinstance(f, Repeats)]:
            logger.removeFilter(f)
