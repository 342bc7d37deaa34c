"""Development tooling, apart from the runtime: benchmarks, the demo and the local broker.

``warroom bench``, ``warroom demo`` and ``warroom kafka`` reach these modules lazily from
``streams.cli``; nothing else in ``streams`` imports them (an import-linter contract)."""
