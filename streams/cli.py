"""The warroom command line: the worker, a local broker, offline tools and benchmarks.

Only the chosen command's modules are imported, so ``warroom --help`` answers at once. The
benchmarks, the demo and the local broker are dev tooling (``devtools``), reached only from
their own commands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from streams.argtypes import positive_float, positive_int


def _settings() -> object:
    from streams.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        raise SystemExit(f"warroom: invalid settings: {setting_errors(exc)}") from None


def setting_errors(exc: ValidationError) -> str:
    """One line naming each bad setting by its variable (``WARROOM_PARTITIONS``), and where it
    holds JSON, the place inside it (``WARROOM_DETECTOR_RULES: 0: ...``)."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        name = f"WARROOM_{loc[0].upper()}" if loc else "WARROOM"
        inside = ".".join(loc[1:])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{name}: {inside + ': ' if inside else ''}{msg}")
    return "; ".join(parts)


def _whatif(args: argparse.Namespace) -> int:
    from streams.whatif import run

    return run(args)


def _kafka(args: argparse.Namespace) -> int:
    from devtools.kafka_local import BrokerError, LocalBroker, fetch_jars

    broker = LocalBroker(Path(args.home))
    try:
        if args.action == "fetch":
            print(fetch_jars())
        elif args.action == "start":
            print(broker.start())
        elif args.action == "stop":
            print("stopped" if broker.stop() else "not running")
        else:
            state = broker.status()
            print(json.dumps(state) if state else "not running")
            return 0 if state else 1
    except BrokerError as exc:
        print(f"warroom kafka: {exc}", file=sys.stderr)
        return 1
    return 0


def _worker(args: argparse.Namespace) -> int:
    from streams.app import ConfigError
    from streams.settings import Settings
    from streams.worker import run_worker

    settings = _settings()
    assert isinstance(settings, Settings)
    try:
        run_worker(settings)
    except ConfigError as exc:
        print(f"warroom worker: {exc}", file=sys.stderr)
        return 2
    return 0


def _demo(args: argparse.Namespace) -> int:
    from devtools.demo import run_demo

    return run_demo(duration_s=args.duration)


def _config_check(args: argparse.Namespace) -> int:
    from streams.catalog_cli import check

    return check(args)


def _config_apply(args: argparse.Namespace) -> int:
    from streams.catalog_cli import apply

    return apply(args)


def _oncall(args: argparse.Namespace) -> int:
    from streams.oncall_cli import main as oncall_main

    return oncall_main(args)


def _runbook(args: argparse.Namespace) -> int:
    from streams.rehearsal import main as rehearsal_main

    return rehearsal_main(args)


def _detect(args: argparse.Namespace) -> int:
    from streams.backtest import BacktestError, run_backtest

    try:
        result = run_backtest(
            Path(args.input),
            Path(args.output),
            args.detector,
            args.param,
            args.policy,
            args.alerts,
            args.series_column,
        )
    except BacktestError as exc:
        print(f"warroom detect: {exc}", file=sys.stderr)
        return 2
    many = f" of {result.series} series" if args.series_column else ""
    print(f"scored {result.rows} rows{many} -> {args.output}", file=sys.stderr)
    if result.policy is not None:
        settings = ", ".join(f"{k} {v}" for k, v in result.policy.items())
        where = f" in {result.alerting_series} series" if args.series_column else ""
        print(f"{result.alerts} alerts (episodes started){where} under the policy: {settings}",
              file=sys.stderr)  # fmt: skip
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.bench == "nab":
        from devtools.bench.nab import main as nab_main

        return nab_main(args)
    if args.bench == "loghub":
        from devtools.bench.loghub import main as loghub_main

        return loghub_main(args)
    if args.bench == "lognoise":
        from devtools.bench.lognoise import main as lognoise_main

        return lognoise_main(args)
    if args.bench == "throughput":
        from devtools.bench.throughput import main as throughput_main

        return throughput_main(args)
    if args.bench == "noise":
        from devtools.bench.noise import main as noise_main

        return noise_main(args)
    if args.bench == "seasonal":
        from devtools.bench.seasonal import main as seasonal_main

        return seasonal_main(args)
    if args.bench == "restart":
        from devtools.bench.restart import main as restart_main

        return restart_main(args)
    if args.bench == "obvious":
        from devtools.bench.obvious import main as obvious_main

        return obvious_main(args)
    print(f"warroom bench: unknown benchmark {args.bench!r}", file=sys.stderr)
    return 2


def _logs(args: argparse.Namespace) -> int:
    from streams.logtemplates import main as templates_main

    return templates_main(args)


def _api(args: argparse.Namespace) -> str:
    """The worker's API: ``--api``, else ``$WARROOM_API_URL``, else the local default (as the
    commands that act on incidents take it)."""
    from streams.respond_cli import DEFAULT_API

    return str(args.api or os.environ.get("WARROOM_API_URL") or DEFAULT_API)


def _review(args: argparse.Namespace) -> int:
    from streams.tools import ToolError, review

    try:
        return review(_api(args), args.incident_id, Path(args.output) if args.output else None)
    except ToolError as exc:
        print(f"warroom review: {exc}", file=sys.stderr)
        return 2


def _incidents(args: argparse.Namespace) -> int:
    from streams.tools import ToolError, incidents

    try:
        return incidents(_api(args), args.status, args.service, args.limit, args.offset)
    except ToolError as exc:
        print(f"warroom incidents: {exc}", file=sys.stderr)
        return 2


def _respond(args: argparse.Namespace) -> int:
    from streams.respond_cli import main as respond_main

    return respond_main(args)


def _replay(args: argparse.Namespace) -> int:
    from streams.settings import Settings
    from streams.tools import replay_command

    settings = _settings()
    assert isinstance(settings, Settings)
    return replay_command(
        settings,
        input_path=Path(args.input) if args.input else None,
        topic=args.topic,
        key_field=args.key_field,
        rebuild_state=args.rebuild,
        events_topic=args.events_topic,
        compare_api=args.compare_api,
    )


def _chosen(argv: list[str] | None) -> list[str] | None:
    """The command words of ``argv`` (``["bench", "nab"]``), or None for every command: options
    of the heavy commands (benchmarks, runbook rehearsal) are only built for the one chosen."""
    if argv is None:
        return None
    return [a for a in argv if not a.startswith("-")][:2]


def parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``argv``, the heavy commands' options only where chosen."""
    words = _chosen(argv)

    def wants(*path: str) -> bool:
        return words is None or words[: len(path)] == list(path)

    root = argparse.ArgumentParser(
        prog="warroom",
        description="Incident detection and response on Apache Kafka: detectors, incidents, "
        "mobilization, timelines and MTTR.",
    )
    sub = root.add_subparsers(dest="command", required=True)

    kafka = sub.add_parser("kafka", help="a local single-node Kafka broker for development")
    kafka.add_argument("action", choices=["start", "stop", "status", "fetch"], help="what to do")
    kafka.add_argument("--home", default=".warroom/kafka", help="broker data and logs")
    kafka.set_defaults(func=_kafka)

    worker = sub.add_parser("worker", help="run a stream worker with the HTTP API")
    worker.set_defaults(func=_worker)

    demo = sub.add_parser("demo", help="broker, worker, generator and responders, end to end")
    demo.add_argument("--duration", type=positive_float, default=90.0, help="seconds at most")
    demo.set_defaults(func=_demo)

    config = sub.add_parser("config", help="configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a catalog YAML file")
    check.add_argument("catalog", help="the catalog YAML file")
    check.set_defaults(func=_config_check)
    apply = config_sub.add_parser(
        "apply", help="check a catalog YAML file and put it in force on every worker"
    )
    apply.add_argument("catalog", help="the catalog YAML file")
    apply.add_argument("--by", default=None, help="who applies it (default: the login name)")
    apply.set_defaults(func=_config_apply)

    oncall = sub.add_parser("oncall", help="who a service's escalation policy pages, and when")
    oncall.add_argument("service", help="a service of the catalog")
    oncall.add_argument("--at", default=None, help="RFC 3339 time the incident opens (now)")
    oncall.add_argument(
        "--catalog",
        default=None,
        help="catalog YAML (default: the live catalog when WARROOM_BOOTSTRAP_SERVERS is set, "
        "else WARROOM_CATALOG_PATH)",
    )
    oncall.add_argument("--incident", default=None, help="incident key for round-robin picks")
    oncall.set_defaults(func=_oncall)

    runbook = sub.add_parser("runbook", help="runbooks")
    runbook_sub = runbook.add_subparsers(dest="runbook_command", required=True)
    rehearse = runbook_sub.add_parser(
        "rehearse", help="run a runbook against a simulated incident (no broker, no paging)"
    )
    if wants("runbook", "rehearse"):
        from streams.rehearsal import add_arguments as rehearsal_arguments

        rehearsal_arguments(rehearse)
    rehearse.set_defaults(func=_runbook)

    whatif = sub.add_parser(
        "whatif", help="incidents and pages a proposed catalog would have made of recorded ones"
    )
    if wants("whatif"):
        from streams.whatif import add_arguments as whatif_arguments

        whatif_arguments(whatif)
    whatif.set_defaults(func=_whatif)

    detect = sub.add_parser("detect", help="score a timestamp,value CSV offline")
    detect.add_argument("--input", required=True, help="CSV with timestamp and value columns")
    detect.add_argument("--output", required=True, help="CSV: the input rows with a score")
    detect.add_argument("--detector", default=None, help="a detector (default tolerant_novelty)")
    detect.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="a detector parameter; V is JSON where it parses",
    )
    detect.add_argument(
        "--series-column",
        metavar="NAME",
        help="a column naming each row's series: each value is scored as a series of its own",
    )
    detect.add_argument(
        "--alerts",
        action="store_true",
        help="add an alert column: 1 where the worker's policy would start an episode",
    )
    detect.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="K=V",
        help="a decision policy setting, as a detector rule's policy (implies --alerts)",
    )
    detect.set_defaults(func=_detect)

    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    nab = bench_sub.add_parser("nab", help="NAB score of the metric detectors")
    nab.add_argument("--root", default="../shared/nab", help="NAB corpus (data, labels, config)")
    if wants("bench", "nab"):
        from devtools.bench import add_detector_choice

        add_detector_choice(nab)
    nab.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip the row of river's Half-Space Trees as shipped (measured in the same run)",
    )
    nab.add_argument(
        "--cv",
        action="store_true",
        help="also score leaving out each NAB category in turn, every choice made on the others",
    )
    nab.add_argument(
        "--grid",
        default="{}",
        help="with --cv: parameter values to choose from (JSON object of name to list), "
        "chosen per left-out category on the others",
    )
    nab.set_defaults(func=_bench)
    loghub = bench_sub.add_parser("loghub", help="log template mining accuracy on Loghub-2k")
    loghub.add_argument("--root", default="../shared/loghub", help="Loghub-2k systems")
    loghub.add_argument(
        "--cv", action="store_true", help="also score each system with settings chosen without it"
    )
    loghub.add_argument(
        "--family-lines", type=positive_int, default=2000, help="lines of each generated family"
    )
    loghub.set_defaults(func=_bench)
    lognoise = bench_sub.add_parser(
        "lognoise", help="log detections per million lines of steady generated logs"
    )
    if wants("bench", "lognoise"):
        from devtools.bench.lognoise import add_arguments as lognoise_arguments

        lognoise_arguments(lognoise)
    lognoise.set_defaults(func=_bench)
    throughput = bench_sub.add_parser(
        "throughput", help="points/s through the worker against the raw ceiling; latency; memory"
    )
    if wants("bench", "throughput"):
        from devtools.bench.throughput import add_arguments as throughput_arguments

        throughput_arguments(throughput)
    throughput.set_defaults(func=_bench)
    noise = bench_sub.add_parser("noise", help="alerts per million points of pure noise")
    if wants("bench", "noise"):
        from devtools.bench.noise import add_arguments as noise_arguments

        noise_arguments(noise)
    noise.set_defaults(func=_bench)
    seasonal = bench_sub.add_parser(
        "seasonal", help="anomalies only the time of day or week gives away"
    )
    if wants("bench", "seasonal"):
        from devtools.bench.seasonal import add_arguments as seasonal_arguments

        seasonal_arguments(seasonal)
    seasonal.set_defaults(func=_bench)
    obvious = bench_sub.add_parser(
        "obvious", help="anomalies nobody would miss on simple series, with an EWMA baseline"
    )
    if wants("bench", "obvious"):
        from devtools.bench.obvious import add_arguments as obvious_arguments

        obvious_arguments(obvious)
    obvious.set_defaults(func=_bench)
    restart = bench_sub.add_parser(
        "restart", help="seconds until a fresh worker is ready with N incidents in its tables"
    )
    if wants("bench", "restart"):
        from devtools.bench.restart import add_arguments as restart_arguments

        restart_arguments(restart)
    restart.set_defaults(func=_bench)

    api_help = "the worker's HTTP API (default: $WARROOM_API_URL, else http://127.0.0.1:8080)"
    review = sub.add_parser("review", help="an incident's post-incident review (Markdown)")
    review.add_argument("incident_id", metavar="ID")
    review.add_argument("--api", help=api_help)
    review.add_argument("--output", help="write it here, with the chart as <stem>-chart.svg")
    review.set_defaults(func=_review)

    incidents = sub.add_parser("incidents", help="list incidents from a running worker")
    incidents.add_argument("--api", help=api_help)
    incidents.add_argument("--status", help="open, triggered, acknowledged, mitigated, resolved")
    incidents.add_argument("--service", help="only this service's incidents")
    incidents.add_argument("--limit", type=int, default=100, help="incidents a page (at most 1000)")
    incidents.add_argument("--offset", type=int, default=0, help="skip this many, newest first")
    incidents.set_defaults(func=_incidents)

    replay = sub.add_parser("replay", help="send a JSON-lines file, or rebuild incidents")
    mode = replay.add_mutually_exclusive_group(required=True)
    mode.add_argument("--input", help="a JSON-lines file to send, one message a line")
    mode.add_argument("--rebuild", action="store_true", help="fold the timeline topic")
    replay.add_argument("--topic", help="where --input goes (a name, or metrics, events, ...)")
    replay.add_argument("--key-field", help="message key from this field of each line")
    replay.add_argument("--events-topic", help="the timeline topic (default from settings)")
    replay.add_argument("--compare-api", metavar="URL", help="exit 1 unless it equals the API's")
    replay.set_defaults(func=_replay)

    from streams.respond_cli import add_arguments as respond_arguments

    respond_arguments(sub, _respond)

    logs = sub.add_parser("logs", help="log template mining")
    logs_sub = logs.add_subparsers(dest="logs_command", required=True)
    templates = logs_sub.add_parser("templates", help="mine templates from a file of messages")
    templates.add_argument("--input", required=True, help="one message per line")
    templates.add_argument("--output", required=True, help="CSV: line,template_id,template")
    templates.set_defaults(func=_logs)
    return root


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    args = parser(argv).parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
