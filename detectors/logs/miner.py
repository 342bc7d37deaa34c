"""Online log template mining (Drain-style): masked token sequences grouped by similarity.

Messages are masked (:mod:`detectors.logs.masks`) and compared with the templates of the same
token count: the message joins the template whose constant tokens it matches best, if it matches
at least ``similarity`` of them, and the positions where it differs become ``<*>``. Otherwise it
starts a new template, and position statistics decide whether it is a new kind of message:
templates of its length that differ from it only in positions that have shown ``<*>`` or
``siblings`` distinct words fold into the oldest (values that vary in several positions at
once); templates whose heads agree and whose free text after the head's last ``word:`` token
differs in ``siblings`` ways fold into ``head <*>`` whatever their lengths (an error's message).
Templates that differ in a single word are merged once ``siblings`` of them exist (a value such
as a user name), not before (an enumeration such as a state); upper-case names are never values.

Template ids are a hash of the tokens that created the template, so they are stable across
restarts and replays; a merged template's id is an alias of the template it went into, and
the tokens that created a template find it wherever merges took it. ``max_templates`` bounds
memory by evicting the rarest.

>>> miner = TemplateMiner()
>>> a = miner.add("Found child 6725 in scoreboard slot 10", ts=0.0)
>>> b = miner.add("Found child 6726 in scoreboard slot 7", ts=1.0)
>>> a.template_id == b.template_id, b.template
(True, 'Found child <*> in scoreboard slot <*>')
>>> users = [miner.add(f"session opened for user {u} by ssh", ts=2.0) for u in ["al", "bo", "cy"]]
>>> len({m.template_id for m in users}), users[-1].template
(3, 'session opened for user cy by ssh')
>>> fourth = miner.add("session opened for user di by ssh", ts=3.0)
>>> fourth.template, fourth.template_id == users[0].template_id, len(fourth.merged)
('session opened for user <*> by ssh', True, 3)
>>> restored = TemplateMiner.from_state(miner.to_state())
>>> restored.add("session opened for user ed by ssh").template_id == users[0].template_id
True
>>> restored.resolve(users[2].template_id) == users[0].template_id
True
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Self

from detectors.logs.masks import WILDCARD, Masker, MaskRule

_MEMO_LIMIT = 100_000
# Merges chain ids (a -> b -> c); a chain longer than this is cut where it stands.
_ALIAS_HOPS = 64
# A position is a candidate value only among more than this many constant tokens: short
# messages that differ in one word ("boot" / "halt") are different events.
_SIBLING_CONTEXT = 3
# A new template is compared, position by position, with the templates that fit it in at least
# this share of positions: their values show which positions vary.
_RESEMBLANCE = 0.5
# Free text after a "word:" token is a value only after a head of this many words.
_TAIL_HEAD_WORDS = 4
_TAIL_HEAD_VALUES = 2
_EXCEPTION = re.compile(r"^[\w$.]*(?:Exception|Error|Throwable):$").match


@dataclass(frozen=True)
class MinerConfig:
    """Mining parameters; the defaults are meant to work for any source without tuning."""

    similarity: float = 1.0
    siblings: int = 4
    max_templates: int = 2000
    masks: tuple[MaskRule, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 < self.similarity <= 1.0:
            raise ValueError("similarity must be in (0, 1]")
        if self.siblings < 2:
            raise ValueError("siblings must be at least 2")
        if self.max_templates < 1:
            raise ValueError("max_templates must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return {
            "similarity": self.similarity,
            "siblings": self.siblings,
            "max_templates": self.max_templates,
            "masks": [[m.pattern, m.replacement] for m in self.masks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MinerConfig:
        return cls(
            similarity=float(data.get("similarity", cls.similarity)),
            siblings=int(data.get("siblings", cls.siblings)),
            max_templates=int(data.get("max_templates", cls.max_templates)),
            masks=tuple(MaskRule(str(p), str(r)) for p, r in data.get("masks", ())),
        )

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> MinerConfig:
        """This configuration with a source's overrides applied (extra masks are appended).

        >>> MinerConfig().with_overrides({"masks": [["user \\\\w+", "user <*>"]]}).masks
        (MaskRule(pattern='user \\\\w+', replacement='user <*>'),)
        """
        if not overrides:
            return self
        unknown = set(overrides) - {"similarity", "siblings", "max_templates", "masks"}
        if unknown:
            raise ValueError(f"unknown miner settings: {', '.join(sorted(unknown))}")
        extra = tuple(MaskRule(str(p), str(r)) for p, r in overrides.get("masks", ()))
        return replace(
            self,
            similarity=float(overrides.get("similarity", self.similarity)),
            siblings=int(overrides.get("siblings", self.siblings)),
            max_templates=int(overrides.get("max_templates", self.max_templates)),
            masks=self.masks + extra,
        )


def template_text(tokens: tuple[str, ...] | list[str]) -> str:
    """A template's text: tokens joined by spaces, runs of ``<*>`` written once."""
    out: list[str] = []
    for token in tokens:
        if token == WILDCARD and out and out[-1] == WILDCARD:
            continue
        out.append(token)
    return " ".join(out)


def template_id(tokens: tuple[str, ...]) -> str:
    """A stable id for the template that ``tokens`` created."""
    digest = hashlib.blake2b("\x1f".join(tokens).encode(), digest_size=6).hexdigest()
    return "tpl-" + digest


@dataclass
class Template:
    """A mined template: its tokens (``<*>`` where values vary) and how often it was seen."""

    id: str
    tokens: list[str]
    count: int = 0
    first_ts: float = 0.0
    last_ts: float = 0.0
    seq: int = 0
    text: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        self.text = template_text(self.tokens)


@dataclass(frozen=True)
class Match:
    """Where one message went: its template, and whether the template is new or changed.

    ``merged`` lists templates folded into this one by the message (their ids now resolve here);
    ``templates`` is how many templates the miner holds after it.
    """

    template_id: str
    template: str
    created: bool = False
    changed: bool = False
    merged: tuple[str, ...] = ()
    templates: int = 0


_KEEP = frozenset("=:([{<\"'@/,;|#")
_CLOSE = _KEEP | frozenset(")]}>")


def fits(pattern: str, token: str) -> bool:
    """Whether ``token`` is ``pattern`` or one of the values it stands for.

    >>> fits("user=<*>", "user=bob"), fits("user=<*>", "uid=0"), fits("<*>", "x")
    (True, False, True)
    """
    if pattern in (token, WILDCARD):
        return True
    if WILDCARD not in pattern:
        return False
    head, _, tail = pattern.partition(WILDCARD)
    tail = tail.rpartition(WILDCARD)[2]
    return len(token) >= len(head) + len(tail) and token.startswith(head) and token.endswith(tail)


def generalize(a: str, b: str) -> str:
    """One token that stands for both: their common key, brackets and quotes around ``<*>``.

    >>> generalize("user=bob", "user=al"), generalize("(uid=0)", "(uid=1)"), generalize("a", "b")
    ('user=<*>', '(uid=<*>)', '<*>')
    >>> generalize("user=<*>", "user=bob"), generalize("ubuntu(uid=<*>)", "git(uid=<*>)")
    ('user=<*>', '<*>(uid=<*>)')
    """
    if fits(a, b):
        return a
    if fits(b, a):
        return b
    limit = min(len(a), len(b))
    head = 0
    while head < limit and a[head] == b[head]:
        head += 1
    while head > 0 and a[head - 1] not in _KEEP:
        head -= 1
    tail = 0
    while tail < limit - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    while tail > 0 and a[-tail] not in _CLOSE:
        tail -= 1
    prefix, suffix = a[:head], a[len(a) - tail :]
    if not (prefix or suffix):
        return WILDCARD
    return prefix + WILDCARD + suffix


def _similarity(template: list[str], tokens: tuple[str, ...]) -> tuple[float, int]:
    const = same = 0
    for a, b in zip(template, tokens, strict=True):
        if a == WILDCARD:
            continue
        const += 1
        if a == b or (WILDCARD in a and fits(a, b)):
            same += 1
    return (same / const if const else 1.0), same


def _resemblance(template: list[str], tokens: list[str]) -> float:
    """The share of positions where ``tokens`` fits ``template`` (equal, or a wildcard)."""
    fit = sum(fits(a, b) for a, b in zip(template, tokens, strict=True))
    return fit / len(tokens) if tokens else 1.0


def _tail_start(tokens: list[str]) -> int | None:
    """Where the free text after the last ``word:`` token starts, if at least
    ``_TAIL_HEAD_WORDS`` words without a value come before it (or the token names an exception,
    ``java.io.IOException:``), and some text after it."""
    for i in range(len(tokens) - 2, -1, -1):
        token = tokens[i]
        if token.endswith(":") and token != WILDCARD:
            if _EXCEPTION(token):
                return i + 1  # an exception's message follows its class
            words = sum(WILDCARD not in t and any(c.isalpha() for c in t) for t in tokens[: i + 1])
            return i + 1 if words >= _TAIL_HEAD_WORDS else None
    return None


def _heads_agree(head: list[str], other: list[str]) -> bool:
    """Whether two heads of free text are one: at most ``_TAIL_HEAD_VALUES`` positions, and a
    third of them, differ, and ``_TAIL_HEAD_WORDS`` words without a value are the same in both."""
    same = differ = 0
    for a, b in zip(head, other, strict=True):
        if fits(a, b) or fits(b, a):
            same += WILDCARD not in a and any(c.isalpha() for c in a)
        else:
            differ += 1
    words = sum(WILDCARD not in a and any(c.isalpha() for c in a) for a in head)
    enough = min(_TAIL_HEAD_WORDS, words)
    return same >= enough and differ <= _TAIL_HEAD_VALUES and 3 * differ <= len(head)


def _enumerated(values: set[str]) -> bool:
    """Whether every value is an upper-case name (a state, a level, an event type): such names
    enumerate kinds of event, however many of them there are."""
    return all(v.isupper() and v.replace("_", "").isalnum() for v in values)


def _variable_positions(tokens: list[str], others: list[Template], values: int) -> set[int]:
    """Positions where ``tokens`` differs from one of ``others`` and that hold a value: a
    ``<*>`` in one of them, or at least ``values`` distinct tokens among them all."""
    out: set[int] = set()
    for i, token in enumerate(tokens):
        seen = {token}
        for other in others:
            seen.add(other.tokens[i])
        if len(seen) > 1 and (WILDCARD in seen or (len(seen) >= values and not _enumerated(seen))):
            out.add(i)
    return out


def _sibling_keys(tokens: list[str]) -> list[tuple[str, ...]]:
    # Only a position among at least _SIBLING_CONTEXT other constant tokens can be a value.
    constants = sum(WILDCARD not in token for token in tokens)
    if constants < _SIBLING_CONTEXT:
        return []
    keys = []
    for i, token in enumerate(tokens):
        if token == WILDCARD or (WILDCARD not in token and constants > _SIBLING_CONTEXT):
            keys.append((str(i), *tokens[:i], WILDCARD, *tokens[i + 1 :]))
    return keys


class TemplateMiner:
    """Mine templates from a stream of messages, one message at a time.

    A message joins the best template of its length whose constant tokens it matches in at least
    ``similarity`` of the positions. Templates that differ in one position only are kept apart
    (an enumeration such as ``VM Started`` / ``VM Stopped`` is usually meaningful) until
    ``siblings`` of them exist: then that position holds a value and they merge into the oldest.
    """

    state_version = 1

    def __init__(self, config: MinerConfig | None = None) -> None:
        self.config = config or MinerConfig()
        self._masker = Masker(self.config.masks)
        self._templates: dict[str, Template] = {}
        self._aliases: dict[str, str] = {}
        self._buckets: dict[int, list[Template]] = {}
        self._siblings: dict[tuple[str, ...], list[Template]] = {}
        self._memo: dict[int, dict[tuple[str, ...], Template]] = {}
        self._memo_size = 0
        self._next_seq = 0

    @property
    def templates(self) -> list[Template]:
        """Every template, in order of creation."""
        return sorted(self._templates.values(), key=lambda t: t.seq)

    def resolve(self, template_id: str) -> str:
        """The current id of a template, following merges (unknown ids come back as given)."""
        aliases = self._aliases
        for _ in range(_ALIAS_HOPS):
            target = aliases.get(template_id)
            if target is None or target == template_id:
                break
            template_id = target
        return template_id

    def get(self, template_id: str) -> Template | None:
        return self._templates.get(self.resolve(template_id))

    def tokens(self, message: str) -> tuple[str, ...]:
        return self._masker.tokens(message)

    def _best(self, tokens: tuple[str, ...]) -> Template | None:
        best: Template | None = None
        best_key = (-1.0, -1)
        for candidate in self._buckets.get(len(tokens), ()):
            key = _similarity(candidate.tokens, tokens)
            if key > best_key:
                best, best_key = candidate, key
        if best is None or best_key[0] < self.config.similarity:
            return None
        return best

    def _forget(self, length: int) -> None:
        memo = self._memo.pop(length, None)
        if memo:
            self._memo_size -= len(memo)

    def match(self, message: str) -> Template | None:
        """The template ``message`` belongs to, without learning from it."""
        tokens = self._masker.tokens(message)
        found = self._memo.get(len(tokens), {}).get(tokens)
        return found if found is not None else self._best(tokens)

    def add(self, message: str, ts: float = 0.0) -> Match:
        """Mine one message observed at epoch second ``ts``."""
        tokens = self._masker.tokens(message)
        n = len(tokens)
        memo = self._memo.get(n)
        found = memo.get(tokens) if memo is not None else None
        created = changed = False
        merged: list[str] = []
        if found is None:
            # Tokens that once created a template belong to it, wherever merges have taken it
            # (a template merged on its free text no longer has its first length).
            found = self._templates.get(self.resolve(template_id(tokens)))
            if found is None:
                found, created, changed = self._mine(tokens, ts, merged)
            if self._memo_size >= _MEMO_LIMIT:
                self._memo.clear()
                self._memo_size = 0
            self._memo.setdefault(n, {})[tokens] = found
            self._memo_size += 1
        found.count += 1
        found.last_ts = max(found.last_ts, ts)
        return Match(found.id, found.text, created, changed, tuple(merged), len(self._templates))

    def _mine(
        self, tokens: tuple[str, ...], ts: float, merged: list[str]
    ) -> tuple[Template, bool, bool]:
        """The template of tokens never seen: the best of their length, made to cover them, or a
        new one; then merges. Also whether it is new, and whether a template changed."""
        created = changed = False
        found = self._best(tokens)
        if found is None:
            new = self._create(tokens, ts)
            found = self._merge_variable_positions(new, merged)
            if found is new:
                found = self._merge_tails(new, merged)
            # A template folded into an older one at once is no new kind of message.
            created = found is new
        else:
            generalized = [
                a if a == b else generalize(a, b) for a, b in zip(found.tokens, tokens, strict=True)
            ]
            if generalized != found.tokens:
                self._retokenize(found, generalized)
                changed = True
        found = self._merge_siblings(found, merged)
        if changed or merged:
            found = self._absorb(found, merged)
        return found, created, changed or bool(merged)

    def _index(self, template: Template) -> None:
        for key in _sibling_keys(template.tokens):
            self._siblings.setdefault(key, []).append(template)

    def _unindex(self, template: Template) -> None:
        for key in _sibling_keys(template.tokens):
            members = self._siblings.get(key)
            if members is not None:
                members.remove(template)
                if not members:
                    del self._siblings[key]

    def _retokenize(self, template: Template, tokens: list[str]) -> None:
        self._unindex(template)
        template.tokens = tokens
        template.text = template_text(tokens)
        self._index(template)
        self._forget(len(tokens))

    def _merge_siblings(self, template: Template, merged: list[str]) -> Template:
        """Fold ``template`` and its siblings together once there are enough of them."""
        while True:
            group = next(
                (
                    members
                    for key in _sibling_keys(template.tokens)
                    if self._mergeable(key, members := self._siblings.get(key, []))
                ),
                None,
            )
            if group is None:
                return template
            template = self._fold(group, merged)

    def _fold(self, group: list[Template], merged: list[str]) -> Template:
        """Merge ``group`` into its oldest template, wildcards where the members differ."""
        members = sorted(group, key=lambda t: t.seq)
        target = members[0]
        tokens = list(target.tokens)
        for other in members[1:]:
            tokens = [
                a if a == b else generalize(a, b) for a, b in zip(tokens, other.tokens, strict=True)
            ]
            self._fold_into(target, other, merged)
        self._retokenize(target, tokens)
        return target

    def _fold_into(self, target: Template, other: Template, merged: list[str]) -> None:
        """Count ``other`` as ``target`` from now on, and forget it."""
        target.count += other.count
        target.first_ts = min(target.first_ts, other.first_ts)
        target.last_ts = max(target.last_ts, other.last_ts)
        self._remove(other)
        # Ids merged into ``other`` before now reach ``target`` through it: resolve follows.
        self._aliases[other.id] = target.id
        merged.append(other.id)

    def _absorb(self, template: Template, merged: list[str]) -> Template:
        """Fold in the templates of its length that ``template``, now more general, covers."""
        covered = [
            other
            for other in self._buckets.get(len(template.tokens), ())
            if other is not template
            and all(fits(a, b) for a, b in zip(template.tokens, other.tokens, strict=True))
        ]
        return self._fold([template, *covered], merged) if covered else template

    def _merge_tails(self, template: Template, merged: list[str]) -> Template:
        """Merge templates that differ only in the text after their last ``word:`` token (free
        text of any length, such as an error's message) once ``siblings`` distinct texts of
        several words, or one ``<*>``, followed the same head."""
        tokens = template.tokens
        cut = _tail_start(tokens)
        if cut is None:
            return template
        head = tokens[:cut]
        members = [
            other
            for other in self._templates.values()
            if other is not template
            and len(other.tokens) > cut
            and other.tokens[cut - 1] == head[-1]
            and _heads_agree(head, other.tokens[:cut])
        ]
        tails = {tuple(t.tokens[cut:]) for t in members} | {tuple(tokens[cut:])}
        # Texts of several words; one word after the head is a position like any other (an
        # upper-case name there, EventType: JOB_SETUP, names a kind of event).
        texts = sum(len(tail) > 1 for tail in tails)
        if not members or ((WILDCARD,) not in tails and texts < self.config.siblings):
            return template
        group = sorted([template, *members], key=lambda t: t.seq)
        target = group[0]
        for other in group:
            head = [
                a if a == b else generalize(a, b)
                for a, b in zip(head, other.tokens[:cut], strict=True)
            ]
        for other in group[1:]:
            self._fold_into(target, other, merged)
        self._remove(target)
        target.tokens = [*head, WILDCARD]
        target.text = template_text(target.tokens)
        self._add(target)
        self._forget(len(target.tokens))
        return target

    def _merge_variable_positions(self, template: Template, merged: list[str]) -> Template:
        """Merge a new template with the templates of its length that differ from it only in
        positions whose values vary: positions that hold ``<*>`` in one of them, or at least
        ``siblings`` distinct values among the templates that resemble it."""
        tokens = template.tokens
        similar = [
            other
            for other in self._buckets.get(len(tokens), ())
            if other is not template and _resemblance(other.tokens, tokens) >= _RESEMBLANCE
        ]
        if not similar:
            return template
        variable = _variable_positions(tokens, similar, self.config.siblings)
        group = [
            other
            for other in similar
            if all(
                fits(a, b) or i in variable
                for i, (a, b) in enumerate(zip(other.tokens, tokens, strict=True))
            )
        ]
        if not group:
            return template
        kept = sum(
            len(a.split())
            for i, a in enumerate(tokens)
            if a != WILDCARD and all(other.tokens[i] == a for other in group)
        )
        if kept < _SIBLING_CONTEXT:
            return template
        return self._fold([template, *group], merged)

    def _mergeable(self, key: tuple[str, ...], members: list[Template]) -> bool:
        """Enough siblings, or one of them already holds a value in the differing position."""
        if len(members) >= self.config.siblings:
            return True
        position = int(key[0])
        return len(members) >= 2 and any(m.tokens[position] == WILDCARD for m in members)

    def _create(self, tokens: tuple[str, ...], ts: float) -> Template:
        template = Template(template_id(tokens), list(tokens), 0, ts, ts, self._next_seq)
        self._aliases.pop(template.id, None)  # created again after a merge: live, not an alias
        self._next_seq += 1
        self._add(template)
        self._forget(len(tokens))
        if len(self._templates) > self.config.max_templates:
            self._evict(keep=template)
        return template

    def _add(self, template: Template) -> None:
        self._templates[template.id] = template
        self._buckets.setdefault(len(template.tokens), []).append(template)
        self._index(template)

    def _remove(self, template: Template) -> None:
        del self._templates[template.id]
        n = len(template.tokens)
        self._buckets[n].remove(template)
        if not self._buckets[n]:
            del self._buckets[n]
        self._unindex(template)
        self._forget(n)

    def _evict(self, keep: Template) -> None:
        victim = min(
            (t for t in self._templates.values() if t is not keep),
            key=lambda t: (t.count, t.last_ts, t.seq),
        )
        self._remove(victim)
        self._aliases = {k: v for k, v in self._aliases.items() if v != victim.id}

    def to_state(self) -> dict[str, Any]:
        """Versioned plain data: the configuration, every template and the merged ids."""
        return {
            "version": self.state_version,
            "config": self.config.to_dict(),
            "next_seq": self._next_seq,
            "templates": [
                [t.id, list(t.tokens), t.count, t.first_ts, t.last_ts, t.seq]
                for t in self.templates
            ],
            "aliases": {old: self.resolve(old) for old in self._aliases},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        if state.get("version") != cls.state_version:
            raise ValueError(f"template miner state version {state.get('version')!r} is unknown")
        miner = cls(MinerConfig.from_dict(state["config"]))
        for tid, tokens, count, first_ts, last_ts, seq in state["templates"]:
            words = [str(t) for t in tokens]
            miner._add(
                Template(str(tid), words, int(count), float(first_ts), float(last_ts), int(seq))
            )
        miner._aliases = {str(k): str(v) for k, v in state.get("aliases", {}).items()}
        miner._next_seq = int(state["next_seq"])
        return miner
