"""Template mining: grouping, stable ids across a state round trip, and the template cap."""

from __future__ import annotations

import pytest

from detectors.logs import MinerConfig, TemplateMiner

GROUPING = [
    (
        "numbers-vary",
        ["Found child 6725 in slot 10", "Found child 6726 in slot 7"],
        [0, 0],
        ["Found child <*> in slot <*>"],
    ),
    (
        "enumeration-stays-apart",
        ["VM Started (Lifecycle Event)", "VM Stopped (Lifecycle Event)"],
        [0, 1],
        ["VM Started (Lifecycle Event)", "VM Stopped (Lifecycle Event)"],
    ),
    (
        "values-merge-once-enough-siblings",
        [f"session opened for user {u} by ssh" for u in ["al", "bo", "cy", "di"]],
        [0, 0, 0, 0],
        ["session opened for user <*> by ssh"],
    ),
    (
        # A word that differs is a value once it has shown enough values, however long the
        # message around it.
        "long-message-one-word-varies",
        [
            f"Receiving block blk_{i} src: /10.0.0.{i}:5 dest: /10.1.{i} from the node {n}, all ok"
            for i, n in enumerate(["alpha", "beta", "gamma", "delta"])
        ],
        [0, 0, 0, 0],
        ["Receiving block <*> src: <*> dest: <*> from the node <*>, all ok"],
    ),
    (
        "masked-value-joins-a-word-sibling",
        ["Invalid user webmaster from 1.2.3.4", "Invalid user test9 from 1.2.3.5"],
        [0, 0],
        ["Invalid user <*> from <*>"],
    ),
    (
        "short-messages-stay-apart",
        ["running", "blocked", "halt"],
        [0, 1, 2],
        ["running", "blocked", "halt"],
    ),
    (
        # Three word values change at once: no two messages differ in one position only, yet
        # each position shows many values, so they are one event.
        "words-vary-in-several-positions",
        [
            f"LOG: connection authorized: user={u} database={d} application_name={a}"
            for u, d, a in [
                ("deploy", "audit", "orders"),
                ("carol", "search", "users"),
                ("root", "ledger", "payments"),
                ("alice", "cart", "billing"),
                ("bob", "orders", "search"),
            ]
        ],
        [0, 0, 0, 0, 0],
        ["LOG: connection authorized: user=<*> database=<*> application_name=<*>"],
    ),
    (
        # The values vary, the level does not: two levels give two events, not one.
        "enumeration-beside-varying-values-stays-apart",
        [
            f"{level} login by {u} from office {o} accepted"
            for level, u, o in [
                ("INFO", "al", "paris"),
                ("WARN", "bo", "tokyo"),
                ("INFO", "cy", "lima"),
                ("WARN", "di", "oslo"),
                ("INFO", "ed", "rome"),
                ("WARN", "fa", "kiev"),
            ]
        ],
        [0, 1, 0, 1, 0, 1],
        [
            "INFO login by <*> from office <*> accepted",
            "WARN login by <*> from office <*> accepted",
        ],
    ),
    (
        # An error's own message after "...:" is free text of any length.
        "free-text-after-a-colon-is-one-value",
        [
            f"ERROR scheduler - job sync failed after {i}ms: {reason}"
            for i, reason in enumerate(
                [
                    "EOF",
                    "connection reset by peer",
                    "broken pipe",
                    "no route to host",
                    "too many open files",
                    "EOF",
                ]
            )
        ],
        [0, 0, 0, 0, 0, 0],
        ["ERROR scheduler - job sync failed after <*>: <*>"],
    ),
    (
        # An exception's message follows its class, however short the head before it.
        "exception-message-is-one-value",
        [
            f"W System.err: java.io.IOException: {reason}"
            for reason in [
                "broken pipe",
                "connection reset by peer",
                "no route to host",
                "too many open files",
                "EOF",
            ]
        ],
        [0, 0, 0, 0, 0],
        ["W <*>: java.io.IOException: <*>"],  # System.err reads as a host name
    ),
    (
        # A single word after the head is a position like any other: upper-case names there
        # are kinds of event, and one longer text beside them is not free text.
        "names-after-a-colon-stay-apart",
        [
            "Processing the event EventType: JOB_SETUP",
            "Processing the event EventType: TASK_ABORT",
            "Processing the event EventType: CONTAINER_LAUNCH for container c_1 attempt a_1",
            "Processing the event EventType: JOB_COMMIT",
        ],
        [0, 1, 2, 3],
        [
            "Processing the event EventType: JOB_SETUP",
            "Processing the event EventType: TASK_ABORT",
            "Processing the event EventType: CONTAINER_LAUNCH for container <*> attempt <*>",
            "Processing the event EventType: JOB_COMMIT",
        ],
    ),
    (
        "different-lengths",
        ["connection closed", "connection closed by peer"],
        [0, 1],
        ["connection closed", "connection closed by peer"],
    ),
]


@pytest.mark.parametrize(
    ("messages", "groups", "templates"), [g[1:] for g in GROUPING], ids=[g[0] for g in GROUPING]
)
def test_grouping(messages: list[str], groups: list[int], templates: list[str]) -> None:
    miner = TemplateMiner()
    ids = [miner.add(m, ts=float(i)).template_id for i, m in enumerate(messages)]
    ids = [miner.resolve(i) for i in ids]
    first_seen = list(dict.fromkeys(ids))
    assert [first_seen.index(i) for i in ids] == groups
    assert [t.text for t in miner.templates] == templates


STREAM = [
    "PacketResponder 1 for block blk_38865049064139660 terminating",
    "Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106 dest: /10.250.19.102:50010",
    "session opened for user cyrus by (uid=0)",
    "session opened for user news by (uid=0)",
    "session opened for user test by (uid=509)",
    "PacketResponder 0 for block blk_-6952295868487656571 terminating",
]
LATER = [
    "session opened for user root by (uid=0)",
    "PacketResponder 2 for block blk_1 terminating",
    "Receiving block blk_2 src: /10.0.0.1:1 dest: /10.0.0.2:2",
    "a brand new kind of message",
]


def test_state_round_trip_keeps_template_ids() -> None:
    miner = TemplateMiner()
    for i, message in enumerate(STREAM):
        miner.add(message, ts=float(i))
    restored = TemplateMiner.from_state(miner.to_state())
    assert restored.to_state() == miner.to_state()
    original = [miner.add(m).template_id for m in LATER]
    again = [restored.add(m).template_id for m in LATER]
    assert original == again
    assert restored.to_state() == miner.to_state()


def test_ids_do_not_depend_on_the_process() -> None:
    a, b = TemplateMiner(), TemplateMiner()
    assert [a.add(m).template_id for m in STREAM] == [b.add(m).template_id for m in STREAM]


def test_state_is_versioned() -> None:
    state = TemplateMiner().to_state()
    with pytest.raises(ValueError, match="version"):
        TemplateMiner.from_state({**state, "version": 99})


@pytest.mark.parametrize("cap", [2, 3, 10], ids=["cap-2", "cap-3", "cap-10"])
def test_eviction_cap_keeps_the_frequent(cap: int) -> None:
    miner = TemplateMiner(MinerConfig(max_templates=cap))
    for i in range(50):
        miner.add("heartbeat ok", ts=float(i))
    for i in range(30):
        miner.add(f"rare event kind{chr(97 + i % 26)}{chr(97 + i // 26)} happened", ts=100.0 + i)
    assert len(miner.templates) <= cap
    assert "heartbeat ok" in [t.text for t in miner.templates]


def test_overrides_apply_per_source() -> None:
    config = MinerConfig().with_overrides({"masks": [[r"user \w+", "user <*>"]], "siblings": 9})
    assert config.siblings == 9 and len(config.masks) == 1
    with pytest.raises(ValueError, match="unknown"):
        MinerConfig().with_overrides({"depth": 4})


def test_a_template_folded_into_an_older_one_is_not_created() -> None:
    miner = TemplateMiner()
    first = [miner.add(f"session opened for user {u} by ssh") for u in ["al", "bo", "cy"]]
    assert all(m.created for m in first)
    fourth = miner.add("session opened for user di by ssh")
    assert fourth.template_id == first[0].template_id and fourth.merged
    assert not fourth.created


def test_ids_merged_twice_resolve_to_the_last_template() -> None:
    miner = TemplateMiner()
    early = [miner.add(f"session opened for user {u} by ssh").template_id for u in "abc"]
    miner.add("session opened for user d by ssh")
    later = [miner.add(f"job {j} failed after 3ms: {r}") for j, r in [("x", "EOF")]]
    assert {miner.resolve(i) for i in early} == {early[0]}
    assert later[0].template_id == miner.resolve(later[0].template_id)
    state = miner.to_state()
    assert all(miner.resolve(v) == v for v in state["aliases"].values())


def test_the_first_message_of_a_template_merged_on_its_free_text_still_joins_it() -> None:
    miner = TemplateMiner()
    reasons = ["broken pipe", "connection reset by peer", "no route to host", "i/o timeout"]
    reasons += ["too many open files"]
    ids = [miner.add(f"ERROR job sync failed after 3ms: {r}").template_id for r in reasons]
    again = miner.add("ERROR job sync failed after 9ms: broken pipe")
    assert not again.created
    assert again.template_id == miner.resolve(ids[0]) == miner.resolve(ids[-1])
    assert [t.text for t in miner.templates] == ["ERROR job sync failed after <*>: <*>"]
