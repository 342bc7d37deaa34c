"""Notifier adapters: the shell's implementations of ``responders.ports.Notifier``."""
