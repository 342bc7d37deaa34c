"""The composition root's notifier seam: ``build(..., notifiers=...)``."""

from __future__ import annotations

from pathlib import Path

from schemas import Catalog, Channel
from streams.app import build
from streams.notifiers.console import ConsoleNotifier
from streams.notifiers.email import EmailNotifier
from streams.notifiers.slack import SlackNotifier
from streams.settings import Settings
from tests.agents.memory import RecordingNotifier


def test_build_puts_the_given_notifiers_in_place_of_the_configured_ones(tmp_path: Path) -> None:
    recording = RecordingNotifier()
    p = build(Settings(data_dir=tmp_path), Catalog(), notifiers={Channel.WEBHOOK: recording})
    assert p.notifiers[Channel.WEBHOOK] is recording
    assert isinstance(p.notifiers[Channel.CONSOLE], ConsoleNotifier)
    assert isinstance(p.notifiers[Channel.SLACK], SlackNotifier)
    assert isinstance(p.notifiers[Channel.EMAIL], EmailNotifier)
    assert set(p.notifiers) == set(Channel)
