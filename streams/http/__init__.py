"""The worker's HTTP API (aiohttp): ``server`` builds the application and runs it inside the
worker; each other module serves one resource's routes (``incidents``, ``silences``, ...) and
``common``, ``auth`` and ``writes`` hold what they share."""
