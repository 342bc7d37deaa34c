"""Generated logs of common families, seeded, with the ground-truth template of every line.

Each family is a list of events: a weight and a pattern where ``{kind}`` marks a value drawn
from a typed generator (an address, a path, a duration, a quoted string, a user name ...). The
ground-truth template of a line is its pattern with every ``{kind}`` written ``<*>``; lines of
one event form one group. The families are written after the shapes of real logs: nginx access
and error logs, a Kubernetes kubelet and containerd, a JVM service with exceptions and key=value
pairs, sshd and PAM, PostgreSQL, a Kafka broker, and an Android device's logcat.

>>> lines = generate("sshd", 3, seed=1)
>>> len(lines), lines[0].template == template_of(lines[0].pattern), lines[0].event[:5]
(3, True, 'sshd-')
>>> generate("sshd", 5, seed=7) == generate("sshd", 5, seed=7)
True
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass

Value = Callable[[random.Random], str]

_FIELD = re.compile(r"\{(\w+)\}")
_USERS = ["alice", "bob", "carol", "deploy", "git", "postgres", "admin", "ubuntu", "jenkins"]
_USERS += ["oracle", "test", "guest", "ops", "build", "www", "mallory", "root", "backup"]
_WORDS = ["orders", "payments", "users", "inventory", "sessions", "audit", "billing", "events"]
_WORDS += ["cart", "search", "ledger", "accounts", "shipping", "catalog", "reports", "invoices"]
_NAMESPACES = ["default", "kube-system", "monitoring", "prod", "staging", "ingress-nginx"]
_IMAGES = ["nginx", "redis", "envoy", "api", "worker", "postgres", "grafana", "fluent-bit"]
_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "curl/8.4.0",
    "kube-probe/1.28",
    "Go-http-client/1.1",
    "python-requests/2.31.0",
    "Prometheus/2.48.0",
]
_METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE", "HEAD"]
_REASONS = ["connection reset by peer", "broken pipe", "i/o timeout", "no route to host"]
_REASONS += ["context deadline exceeded", "EOF", "permission denied", "too many open files"]
_JAVA = ["com.acme.orders.OrderService", "com.acme.pay.PaymentClient", "org.acme.db.Repository"]
_JAVA += ["com.acme.api.UserController", "com.acme.cache.RedisCache", "io.acme.kafka.Producer"]


def _hex(n: int) -> Value:
    return lambda r: "".join(r.choice("0123456789abcdef") for _ in range(n))


def _int(lo: int, hi: int) -> Value:
    return lambda r: str(r.randint(lo, hi))


def _pick(options: list[str]) -> Value:
    return lambda r: r.choice(options)


def _ip(r: random.Random) -> str:
    first = r.choice([10, 172, 192, 34, 52])
    return f"{first}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"


def _hostport(r: random.Random) -> str:
    return f"{_ip(r)}:{r.randint(1024, 65535)}"


def _host(r: random.Random) -> str:
    domain = r.choice(["svc.cluster.local", "internal", "example.com"])
    return f"{r.choice(_WORDS)}-{r.randint(0, 40)}.{domain}"


def _duration(r: random.Random) -> str:
    unit = r.choice(["ms", "s", "µs", "m", "ms", "ms"])
    value = r.choice([str(r.randint(1, 999)), f"{r.uniform(0, 99):.3f}"])
    return value + unit


def _go_duration(r: random.Random) -> str:
    return r.choice([f"{r.randint(1, 59)}m{r.randint(0, 59)}s", f"{r.uniform(0, 9):.6f}s"])


def _path(r: random.Random) -> str:
    parts = [
        r.choice([*_WORDS, "api", "v1", "v2", "static", "img"]) for _ in range(r.randint(1, 4))
    ]
    if r.random() < 0.4:
        parts.append(str(r.randint(1, 99999)))
    return "/" + "/".join(parts)


def _url(r: random.Random) -> str:
    query = f"?id={r.randint(1, 9999)}" if r.random() < 0.3 else ""
    return f"https://{_host(r)}{_path(r)}{query}"


def _uuid(r: random.Random) -> str:
    h = _hex(32)(r)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _pod(r: random.Random) -> str:
    suffix = "".join(r.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    return f"{r.choice(_IMAGES)}-{_hex(9)(r)}-{suffix}"


def _word_pod(r: random.Random) -> str:
    return f"{r.choice(_NAMESPACES)}/{_pod(r)}"


def _quoted(r: random.Random) -> str:
    words = [
        r.choice([*_WORDS, "not", "found", "for", "the", "key"]) for _ in range(r.randint(1, 5))
    ]
    return '"' + " ".join(words) + '"'


def _json(r: random.Random) -> str:
    pairs = [f'"{r.choice(_WORDS)}": {r.randint(0, 500)}' for _ in range(r.randint(1, 4))]
    return "{" + ", ".join(pairs) + "}"


def _agent(r: random.Random) -> str:
    return '"' + r.choice(_AGENTS) + '"'


def _time(r: random.Random) -> str:
    h, m, s = r.randint(0, 23), r.randint(0, 59), r.randint(0, 59)
    return f"{h:02d}:{m:02d}:{s:02d}.{r.randint(0, 999):03d}"


def _stamp(r: random.Random) -> str:
    return f"2026/{r.randint(1, 12):02d}/{r.randint(1, 28):02d} {_time(r)[:8]}"


_STATEMENTS = [
    "SELECT * FROM {} WHERE id = {}",
    "UPDATE {} SET state = 'done' WHERE id = $1",
    "INSERT INTO {} (id, body) VALUES ($1, $2)",
]


def _sql(r: random.Random) -> str:
    return r.choice(_STATEMENTS).format(r.choice(_WORDS), r.randint(1, 99999))


VALUES: dict[str, Value] = {
    "ip": _ip,
    "hostport": _hostport,
    "host": _host,
    "port": _int(1024, 65535),
    "int": _int(0, 100000),
    "small": _int(1, 64),
    "pid": _int(100, 65000),
    "hex8": _hex(8),
    "hex12": _hex(12),
    "hex64": _hex(64),
    "uuid": _uuid,
    "path": _path,
    "url": _url,
    "dur": _duration,
    "godur": _go_duration,
    "quoted": _quoted,
    "json": _json,
    "user": _pick(_USERS),
    "word": _pick(_WORDS),
    "ns": _pick(_NAMESPACES),
    "image": _pick(_IMAGES),
    "pod": _pod,
    "nspod": _word_pod,
    "method": _pick(_METHODS),
    "status": _pick(["200", "200", "200", "201", "204", "301", "304", "400", "404", "500"]),
    "agent": _agent,
    "remote": lambda r: r.choice(["-", "-", "-", *_USERS]),
    "target": lambda r: _path(r) if r.random() < 0.8 else _url(r),
    "proto": _pick(["HTTP/1.1", "HTTP/1.1", "HTTP/2.0", "HTTP/1.0"]),
    "referrer": lambda r: '"-"' if r.random() < 0.7 else f'"{_url(r)}"',
    "reason": _pick(_REASONS),
    "class": _pick(_JAVA),
    "time": _time,
    "stamp": _stamp,
    "sql": _sql,
    "topic": lambda r: f"{r.choice(_WORDS)}.{r.choice(['events', 'commands', 'changes'])}.v1",
    "float": lambda r: f"{r.uniform(0, 100):.2f}",
    "pkg": lambda r: f"com.{r.choice(_WORDS)}.{r.choice(['app', 'client', 'mobile', 'lite'])}",
    "day": lambda r: f"{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    "bytes": lambda r: f"{r.randint(1, 999)}{r.choice(['B', 'KiB', 'MiB', 'GiB'])}",
}

# (weight, pattern): weights are relative frequencies within a family.
FAMILIES: dict[str, list[tuple[float, str]]] = {
    "nginx": [
        # One log_format: the user and the referrer are values ("-" when there is none).
        (
            70,
            '{ip} - {remote} [{stamp} +0000] "{method} {target} {proto}" {status} {int} '
            "{referrer} {agent}",
        ),
        (
            4,
            '{stamp} [error] {pid}#{small}: *{int} open() "{path}" failed (2: No '
            'such file or directory), client: {ip}, server: {host}, request: "GET '
            '{path} HTTP/1.1"',
        ),
        (
            3,
            "{stamp} [error] {pid}#{small}: *{int} upstream timed out (110: "
            "Connection timed out) while reading response header from upstream, "
            'client: {ip}, server: {host}, upstream: "http://{hostport}{path}"',
        ),
        (
            2,
            "{stamp} [warn] {pid}#{small}: *{int} an upstream response is buffered "
            "to a temporary file {path} while reading upstream, client: {ip}",
        ),
        (
            2,
            "{stamp} [error] {pid}#{small}: *{int} connect() failed (111: "
            "Connection refused) while connecting to upstream, client: {ip}, "
            'upstream: "http://{hostport}/"',
        ),
        (1, "{stamp} [notice] {pid}#{small}: signal process started"),
        (1, "{stamp} [notice] {pid}#{small}: worker process {pid} exited with code 0"),
        (1, "{stamp} [alert] {pid}#{small}: {int} worker_connections are not enough"),
        (
            1,
            "{stamp} [crit] {pid}#{small}: *{int} SSL_do_handshake() failed (SSL: "
            "error:0A00006C:SSL routines::bad key share) while SSL handshaking, "
            "client: {ip}",
        ),
    ],
    "kubelet": [
        (
            10,
            'I1207 {time} {pid} kubelet.go:{int}] "SyncLoop UPDATE" source="api" pods=["{nspod}"]',
        ),
        (
            8,
            'I1207 {time} {pid} kuberuntime_manager.go:{int}] "Container of pod is '
            'not in the desired state and shall be started" container="{image}" '
            'pod="{nspod}"',
        ),
        (
            8,
            'I1207 {time} {pid} prober.go:{int}] "Probe failed" '
            'probeType="Readiness" pod="{nspod}" podUID="{uuid}" '
            'containerName="{image}" probeResult="failure" output="Get '
            '\\"http://{hostport}/healthz\\": dial tcp {hostport}: connect: '
            'connection refused"',
        ),
        (
            6,
            'E1207 {time} {pid} pod_workers.go:{int}] "Error syncing pod, '
            'skipping" err="failed to \\"StartContainer\\" for \\"{image}\\" with '
            'CrashLoopBackOff: \\"back-off {godur} restarting failed '
            'container={image} pod={pod}_{ns}({uuid})\\"" pod="{nspod}" '
            'podUID="{uuid}"',
        ),
        (5, 'I1207 {time} {pid} scope.go:{int}] "RemoveContainer" containerID="{hex64}"'),
        (
            5,
            'time="2026-12-07T{time}Z" level=info msg="StartContainer for '
            '\\"{hex64}\\" returns successfully"',
        ),
        (
            5,
            'time="2026-12-07T{time}Z" level=info msg="shim disconnected" '
            "id={hex64} namespace=k8s.io",
        ),
        (
            4,
            'time="2026-12-07T{time}Z" level=info msg="PullImage '
            '\\"docker.io/library/{image}:{small}.{small}\\" returns image reference '
            '\\"sha256:{hex64}\\""',
        ),
        (
            3,
            'time="2026-12-07T{time}Z" level=error msg="ContainerStatus for '
            '\\"{hex64}\\" failed" error="rpc error: code = NotFound desc = an error '
            'occurred when try to find container \\"{hex64}\\": not found"',
        ),
        (
            3,
            "W1207 {time} {pid} reflector.go:{int}] {path}: watch of *v1.Pod ended "
            'with: an error on the server ("unable to decode an event from the '
            'watch stream: {reason}") has prevented the request from succeeding',
        ),
        (
            2,
            'I1207 {time} {pid} eviction_manager.go:{int}] "Eviction manager: '
            'attempting to reclaim" resourceName="memory"',
        ),
        (
            1,
            'E1207 {time} {pid} kubelet_node_status.go:{int}] "Error updating node '
            'status, will retry" err="error getting node \\"{host}\\": Get '
            '\\"{url}\\": {reason}"',
        ),
        (1, 'I1207 {time} {pid} log.go:{int}] "Pod is not ready" pod="{nspod}" reason={quoted}'),
    ],
    "jvm": [
        (
            20,
            "{stamp} INFO  [http-nio-8080-exec-{small}] {class} - request "
            "completed method={method} path={path} status={status} "
            "duration_ms={int} user={user} traceId={hex12}",
        ),
        (
            8,
            "{stamp} INFO  [main] {class} - cache stats hits={int} misses={int} "
            "evictions={int} hit_ratio={float}",
        ),
        (
            6,
            "{stamp} WARN  [pool-{small}-thread-{small}] {class} - slow query took "
            "{dur} sql={quoted}",
        ),
        (
            5,
            "{stamp} ERROR [http-nio-8080-exec-{small}] {class} - payment declined "
            "orderId={uuid} reason={quoted} attempt={small}",
        ),
        (4, "java.net.SocketTimeoutException: Read timed out after {dur} connecting to {hostport}"),
        (10, "\tat {class}.{word}({word}.java:{int})"),
        (3, "\t... {small} more"),
        (
            3,
            "Caused by: java.sql.SQLTransientConnectionException: "
            "HikariPool-{small} - Connection is not available, request timed out "
            "after {int}ms.",
        ),
        (3, "{stamp} INFO  [main] {class} - loaded config {json}"),
        (
            2,
            "{stamp} INFO  [main] o.s.b.w.e.tomcat.TomcatWebServer - Tomcat "
            "started on port(s): {port} (http) with context path ''",
        ),
        (
            2,
            "{stamp} INFO  [main] com.acme.Application - Started Application in "
            "{float} seconds (process running for {float})",
        ),
        (
            2,
            "{stamp} WARN  [kafka-producer-network-thread | producer-{small}] "
            "o.a.k.c.NetworkClient - [Producer clientId=producer-{small}] "
            "Connection to node {small} ({host}/{hostport}) could not be "
            "established. Broker may not be available.",
        ),
        (1, "{stamp} ERROR [scheduling-1] {class} - job {word} failed after {dur}: {reason}"),
        (1, "{stamp} INFO  [main] {class} - GC pause young {bytes}->{bytes} ({bytes}) {dur}"),
    ],
    "sshd": [
        (
            20,
            "sshd[{pid}]: Accepted publickey for {user} from {ip} port {port} "
            "ssh2: RSA SHA256:{hex12}",
        ),
        (15, "sshd[{pid}]: Failed password for invalid user {user} from {ip} port {port} ssh2"),
        (10, "sshd[{pid}]: Failed password for {user} from {ip} port {port} ssh2"),
        (12, "sshd[{pid}]: Invalid user {user} from {ip} port {port}"),
        (
            15,
            "sshd[{pid}]: pam_unix(sshd:session): session opened for user "
            "{user}(uid={int}) by (uid=0)",
        ),
        (14, "sshd[{pid}]: pam_unix(sshd:session): session closed for user {user}"),
        (8, "sshd[{pid}]: Received disconnect from {ip} port {port}:11: disconnected by user"),
        (6, "sshd[{pid}]: Disconnected from user {user} {ip} port {port}"),
        (
            4,
            "sshd[{pid}]: Connection closed by authenticating user {user} {ip} "
            "port {port} [preauth]",
        ),
        (
            3,
            "sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= "
            "uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}",
        ),
        (
            2,
            "sshd[{pid}]: error: maximum authentication attempts exceeded for "
            "{user} from {ip} port {port} ssh2 [preauth]",
        ),
        (2, "sudo[{pid}]:    {user} : TTY=pts/{small} ; PWD={path} ; USER=root ; COMMAND={path}"),
        (1, "sshd[{pid}]: Server listening on 0.0.0.0 port 22."),
        (1, "sshd[{pid}]: Timeout, client not responding from user {user} {ip} port {port}"),
    ],
    "postgres": [
        (20, "{stamp} UTC [{pid}] {user}@{word} LOG:  duration: {float} ms  statement: {sql}"),
        (10, "{stamp} UTC [{pid}] LOG:  connection received: host={ip} port={port}"),
        (
            10,
            "{stamp} UTC [{pid}] {user}@{word} LOG:  connection authorized: "
            "user={user} database={word} application_name={word}",
        ),
        (
            8,
            "{stamp} UTC [{pid}] {user}@{word} LOG:  disconnection: session time: "
            "{time} user={user} database={word} host={ip} port={port}",
        ),
        (5, "{stamp} UTC [{pid}] LOG:  checkpoint starting: time"),
        (
            5,
            "{stamp} UTC [{pid}] LOG:  checkpoint complete: wrote {int} buffers "
            "({float}%); 0 WAL file(s) added, 0 removed, {small} recycled; "
            "write={float} s, sync={float} s, total={float} s",
        ),
        (
            4,
            "{stamp} UTC [{pid}] {user}@{word} ERROR:  duplicate key value "
            'violates unique constraint "{word}_pkey"',
        ),
        (4, "{stamp} UTC [{pid}] {user}@{word} DETAIL:  Key (id)=({int}) already exists."),
        (
            3,
            '{stamp} UTC [{pid}] {user}@{word} ERROR:  relation "{word}" does not '
            "exist at character {small}",
        ),
        (
            3,
            "{stamp} UTC [{pid}] LOG:  automatic vacuum of table "
            '"{word}.public.{word}": index scans: {small}',
        ),
        (
            2,
            "{stamp} UTC [{pid}] {user}@{word} FATAL:  password authentication "
            'failed for user "{user}"',
        ),
        (
            2,
            "{stamp} UTC [{pid}] {user}@{word} ERROR:  canceling statement due to "
            "statement timeout",
        ),
        (1, "{stamp} UTC [{pid}] LOG:  database system is ready to accept connections"),
        (
            1,
            "{stamp} UTC [{pid}] {user}@{word} LOG:  process {pid} still waiting "
            "for ShareLock on transaction {int} after {float} ms",
        ),
    ],
    "android": [
        (
            15,
            "{day} {time} {pid} {pid} D PowerManagerService: acquireWakeLock flags=0x{hex8} "
            'tag="{word}" uid={int} pid={pid}',
        ),
        (
            12,
            "{day} {time} {pid} {pid} I ActivityManager: Start proc {pid}:{pkg}/u0a{small} for "
            "activity {pkg}/.MainActivity",
        ),
        (
            10,
            "{day} {time} {pid} {pid} I ActivityManager: Killing {pid}:{pkg}/u0a{small} "
            "(adj {small}): empty #{small}",
        ),
        (
            8,
            "{day} {time} {pid} {pid} V AlarmManager: Triggering alarm #{small}: "
            "Alarm{{hex8} type {small} when {int} {pkg}}",
        ),
        (8, "{day} {time} {pid} {pid} I chatty  : uid={int}({pkg}) {word} identical {small} lines"),
        (
            6,
            "{day} {time} {pid} {pid} D BatteryService: level:{small} scale:100 status:{small} "
            "health:2 present:true voltage:{int} temperature:{int}",
        ),
        (
            4,
            "{day} {time} {pid} {pid} W ActivityManager: Scheduling restart of crashed service "
            "{pkg}/.SyncService in {int}ms",
        ),
        (3, "{day} {time} {pid} {pid} D WifiStateMachine: processMsg: ConnectedState"),
        (3, "{day} {time} {pid} {pid} D WifiStateMachine: processMsg: ObtainingIpState"),
        (2, "{day} {time} {pid} {pid} E AndroidRuntime: FATAL EXCEPTION: main"),
        (2, "{day} {time} {pid} {pid} E AndroidRuntime: Process: {pkg}, PID: {pid}"),
        (1, "{day} {time} {pid} {pid} W System.err: java.io.IOException: {reason}"),
    ],
    "kafka": [
        (
            15,
            "[{stamp},{small}] INFO [LocalLog partition={topic}-{small}, "
            "dir={path}] Rolled new log segment at offset {int} in {small} ms. "
            "(kafka.log.LocalLog)",
        ),
        (
            12,
            "[{stamp},{small}] INFO [ProducerStateManager "
            "partition={topic}-{small}] Wrote producer snapshot at offset {int} "
            "with {small} producer ids in {small} ms. "
            "(kafka.log.ProducerStateManager)",
        ),
        (
            10,
            "[{stamp},{small}] INFO [GroupCoordinator {small}]: Preparing to "
            "rebalance group {word}-consumers in state PreparingRebalance with old "
            "generation {int} (__consumer_offsets-{small}) (reason: {quoted}) "
            "(kafka.coordinator.group.GroupCoordinator)",
        ),
        (
            10,
            "[{stamp},{small}] INFO [GroupCoordinator {small}]: Stabilized group "
            "{word}-consumers generation {int} (__consumer_offsets-{small}) with "
            "{small} members (kafka.coordinator.group.GroupCoordinator)",
        ),
        (
            8,
            "[{stamp},{small}] INFO [UnifiedLog partition={topic}-{small}, "
            "dir={path}] Deleting segment LogSegment(baseOffset={int}, size={int}, "
            "lastModifiedTime={int}, largestRecordTimestamp=Some({int})) due to "
            "retention time {int}ms breach based on the largest record timestamp "
            "in the segment (kafka.log.UnifiedLog)",
        ),
        (
            6,
            "[{stamp},{small}] WARN [ReplicaFetcher replicaId={small}, "
            "leaderId={small}, fetcherId={small}] Error in response for fetch "
            "request (type=FetchRequest, replicaId={small}, maxWait=500, "
            "minBytes=1, maxBytes=10485760) (kafka.server.ReplicaFetcherThread)",
        ),
        (
            5,
            "[{stamp},{small}] INFO [Partition {topic}-{small} broker={small}] ISR "
            "updated to {small},{small} and version updated to {int} "
            "(kafka.cluster.Partition)",
        ),
        (
            4,
            "[{stamp},{small}] INFO [SocketServer listenerType=BROKER, "
            "nodeId={small}] Failed authentication with /{ip} "
            "(channelId={hostport}-{hostport}-{int}) (Unexpected Kafka request of "
            "type METADATA during SASL handshake.) "
            "(org.apache.kafka.common.network.Selector)",
        ),
        (
            3,
            "[{stamp},{small}] INFO [Controller id={small}] Processed {int} "
            "records in {dur} (org.apache.kafka.controller.QuorumController)",
        ),
        (
            2,
            "[{stamp},{small}] ERROR [KafkaApi-{small}] Error when handling "
            "request: clientId={word}, correlationId={int}, api=FETCH, "
            "version={small}, body={json} (kafka.server.KafkaApis)",
        ),
        (1, "[{stamp},{small}] INFO [KafkaServer id={small}] started (kafka.server.KafkaServer)"),
        (
            1,
            "[{stamp},{small}] WARN [Producer clientId={word}-producer] Got error "
            "produce response with correlation id {int} on topic-partition "
            "{topic}-{small}, retrying ({small} attempts left). Error: "
            "NOT_LEADER_OR_FOLLOWER "
            "(org.apache.kafka.clients.producer.internals.Sender)",
        ),
    ],
}


def template_of(pattern: str) -> str:
    """The ground-truth template of an event: every ``{kind}`` written ``<*>``.

    >>> template_of("Invalid user {user} from {ip} port {port}")
    'Invalid user <*> from <*> port <*>'
    """
    return _FIELD.sub("<*>", pattern)


def render(pattern: str, rng: random.Random) -> str:
    """One line of an event, every ``{kind}`` filled by its generator."""
    return _FIELD.sub(lambda m: VALUES[m.group(1)](rng), pattern)


_ERROR_MARKS = ("ERROR", "[error]", "[crit]", "[alert]", "FATAL", "E1207", "level=error", "} E ")
_WARN_MARKS = ("WARN", "[warn]", "W1207", "level=warning", "} W ")


def level_of(pattern: str) -> str:
    """The level a line of this event is logged at, as its own text says.

    >>> level_of("{stamp} ERROR [main] x"), level_of("W1207 {time} y"), level_of("ok")
    ('ERROR', 'WARN', 'INFO')
    """
    if any(mark in pattern for mark in _ERROR_MARKS):
        return "ERROR"
    if any(mark in pattern for mark in _WARN_MARKS):
        return "WARN"
    return "INFO"


@dataclass(frozen=True)
class Line:
    """One generated line: its message, the event (group) it belongs to and its template."""

    message: str
    event: str
    pattern: str

    @property
    def template(self) -> str:
        return template_of(self.pattern)


def generate(family: str, lines: int, seed: int = 0) -> list[Line]:
    """``lines`` lines of ``family``, the same for the same seed."""
    events = FAMILIES[family]
    rng = random.Random(f"{family}:{seed}")
    weights = [w for w, _ in events]
    chosen = rng.choices(range(len(events)), weights=weights, k=lines)
    return [Line(render(events[i][1], rng), f"{family}-E{i + 1}", events[i][1]) for i in chosen]
