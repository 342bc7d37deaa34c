"""One agent per module; each exposes ``attach(pipeline)``."""
