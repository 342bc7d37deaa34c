"""A local single-node Apache Kafka broker (KRaft) from Maven Central, for development and tests.

``warroom kafka start|stop|status`` and the test harness both use :class:`LocalBroker`. The jars are
fetched once with Maven through ``devtools/kafka/pom.xml`` into an ignored cache folder and reused.
:class:`LocalCluster` runs three such nodes as one cluster, for the tests that need replication.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

KAFKA_VERSION = "4.1.2"
_POM = Path(__file__).with_name("kafka") / "pom.xml"
_LOG4J = Path(__file__).with_name("kafka") / "log4j2.properties"
_REPO_ROOT = Path(__file__).resolve().parents[1]

Progress = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class BrokerError(RuntimeError):
    """The local broker could not be fetched, started or reached."""


def cache_dir() -> Path:
    """Where the broker jars live: ``$WARROOM_CACHE_DIR`` or ``.cache`` in the source tree."""
    configured = os.environ.get("WARROOM_CACHE_DIR")
    return Path(configured) if configured else _REPO_ROOT / ".cache"


def fetch_jars(progress: Progress = _stderr) -> Path:
    """Download Apache Kafka and its logging binding with Maven, once; return the jar folder."""
    libs = cache_dir() / "kafka" / KAFKA_VERSION / "libs"
    if (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven ('mvn') is needed once to fetch the Kafka jars; install it first")
    java = shutil.which("java")
    if java is None:
        raise BrokerError("Java 17+ is needed to run the local Kafka broker; install it first")
    staging = libs.with_name(f"libs.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    progress(f"downloading Apache Kafka {KAFKA_VERSION} from Maven Central into {libs.parent} ...")
    cmd = [
        mvn, "-B", "-f", str(_POM),
        f"-Dkafka.version={KAFKA_VERSION}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    downloaded = 0
    tail: list[str] = []
    for line in proc.stdout:
        tail = [*tail[-30:], line.rstrip()]
        if "Downloaded from" in line:
            downloaded += 1
            if downloaded % 10 == 0:
                elapsed = time.monotonic() - started
                progress(f"  {downloaded} files downloaded ({elapsed:.0f}s)")
    if proc.wait() != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise BrokerError("Maven could not fetch the Kafka jars:\n" + "\n".join(tail))
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    jars = len(list(libs.glob("*.jar")))
    progress(f"  {jars} jars ready in {time.monotonic() - started:.1f}s")
    return libs


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


async def metadata_ready(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """True when the broker answers a metadata request with itself in the cluster."""
    from aiokafka.client import AIOKafkaClient

    # Refused connections are expected while the broker boots; don't print each one.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        metadata = await asyncio.wait_for(client.fetch_all_metadata(), timeout_s)
        return bool(metadata.brokers())
    except Exception:
        return False
    finally:
        await client.close()
        logging.getLogger("aiokafka").setLevel(logging.NOTSET)


SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class SaslSslListener:
    """An extra SASL_SSL listener: TLS with a self-signed CA made at start, and these users.

    Every user can log in with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 (SCRAM credentials are
    written into the KRaft metadata when the storage is formatted).
    """

    users: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.users:
            raise ValueError("a SASL_SSL listener needs at least one user")
        for name, password in self.users.items():
            if not _SAFE.match(name) or not _SAFE.match(password):
                raise ValueError("SASL user names and passwords must match [A-Za-z0-9._-]+")


@dataclass
class LocalBroker:
    """A broker whose data, config, logs and PID live in ``home``.

    With ``sasl_ssl`` set, the broker also listens for SASL_SSL on a second port
    (:attr:`sasl_ssl_bootstrap`), with a certificate for 127.0.0.1 / localhost signed by a CA
    made at start (:attr:`ca_file`). Without it, nothing changes.
    """

    home: Path
    heap: str = "512m"
    sasl_ssl: SaslSslListener | None = None

    @property
    def ca_file(self) -> Path:
        """The PEM file of the CA that signed the SASL_SSL listener's certificate."""
        return self.home / "tls" / "ca.pem"

    @property
    def sasl_ssl_bootstrap(self) -> str:
        state = self.status()
        if state is None or "sasl_ssl_bootstrap" not in state:
            raise BrokerError(f"no broker with a SASL_SSL listener is running in {self.home}")
        return str(state["sasl_ssl_bootstrap"])

    @property
    def _state_file(self) -> Path:
        return self.home / "broker.json"

    def status(self) -> dict[str, object] | None:
        """The running broker's PID and bootstrap address, or None if it is not running."""
        try:
            state: dict[str, object] = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return None
        pid = state.get("pid")
        if not isinstance(pid, int) or not _is_our_broker(pid):
            return None
        return state

    @property
    def bootstrap(self) -> str:
        state = self.status()
        if state is None:
            raise BrokerError(f"no broker is running in {self.home}")
        return str(state["bootstrap"])

    def start(self, timeout_s: float = 120.0, progress: Progress = _stderr) -> str:
        """Start a fresh broker (wiping old data) and wait until it answers metadata requests."""
        running = self.status()
        if running is not None:
            progress(f"broker already running (pid {running['pid']})")
            return str(running["bootstrap"])
        libs = fetch_jars(progress)
        shutil.rmtree(self.home / "data", ignore_errors=True)
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        port, controller = free_port(), free_port()
        while controller == port:
            controller = free_port()
        bootstrap = f"127.0.0.1:{port}"
        listeners = f"PLAINTEXT://{bootstrap},CONTROLLER://127.0.0.1:{controller}"
        advertised = f"PLAINTEXT://{bootstrap}"
        protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        extra: list[str] = []
        format_args: list[str] = []
        state: dict[str, object] = {"bootstrap": bootstrap}
        if self.sasl_ssl is not None:
            secure = free_port()
            while secure in (port, controller):
                secure = free_port()
            state["sasl_ssl_bootstrap"] = f"127.0.0.1:{secure}"
            state["ca_file"] = str(self.ca_file)
            listeners += f",SASL_SSL://127.0.0.1:{secure}"
            advertised += f",SASL_SSL://127.0.0.1:{secure}"
            protocols += ",SASL_SSL:SASL_SSL"
            extra = self._sasl_ssl_properties(self.sasl_ssl)
            format_args = [
                arg
                for mechanism in SASL_MECHANISMS[1:]
                for name, password in self.sasl_ssl.users.items()
                for arg in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
            ]
        props = self.home / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{controller}",
                    f"listeners={listeners}",
                    f"advertised.listeners={advertised}",
                    "controller.listener.names=CONTROLLER",
                    f"listener.security.protocol.map={protocols}",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={self.home / 'data'}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=4",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "log.retention.hours=168",
                    *extra,
                    "",
                ]
            )
        )
        classpath = f"{libs}/*"
        java = shutil.which("java") or "java"
        jvm = [
            java, f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            f"-Dlog4j2.configurationFile={_LOG4J}",
            "-cp", classpath,
        ]  # fmt: skip
        started = time.monotonic()
        fmt = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format",
             f"--cluster-id={_cluster_id()}", "-c", str(props), *format_args],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if fmt.returncode != 0:
            raise BrokerError(f"formatting the broker storage failed:\n{fmt.stderr or fmt.stdout}")
        out = (self.home / "logs" / "stdout.log").open("ab")
        proc = subprocess.Popen(
            [*jvm, "kafka.Kafka", str(props)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        out.close()
        self._state_file.write_text(json.dumps({"pid": proc.pid, **state}))
        progress(f"waiting for the broker at {bootstrap} to answer metadata requests ...")
        deadline = started + timeout_s
        next_note = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(
                    f"the broker exited with code {proc.returncode}; see {self.home / 'logs'}"
                )
            if asyncio.run(metadata_ready(bootstrap, timeout_s=2.0)):
                progress(f"broker ready at {bootstrap} in {time.monotonic() - started:.1f}s")
                return bootstrap
            if time.monotonic() > next_note:
                progress(f"  still waiting ({time.monotonic() - started:.0f}s)")
                next_note += 10
            time.sleep(0.2)
        self.stop()
        raise BrokerError(f"the broker did not become ready within {timeout_s:.0f}s")

    def _sasl_ssl_properties(self, listener: SaslSslListener) -> list[str]:
        """Make the CA and the broker's keystore; the listener's TLS and SASL settings."""
        tls = self.home / "tls"
        keystore, password = _make_keystore(tls, self.ca_file)
        prefix = "listener.name.sasl_ssl"
        plain_users = " ".join(f'user_{n}="{p}"' for n, p in listener.users.items())
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return [
            f"sasl.enabled.mechanisms={','.join(SASL_MECHANISMS)}",
            f"{prefix}.sasl.enabled.mechanisms={','.join(SASL_MECHANISMS)}",
            f"{prefix}.plain.sasl.jaas.config="
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
            f"{prefix}.scram-sha-256.sasl.jaas.config={scram}",
            f"{prefix}.scram-sha-512.sasl.jaas.config={scram}",
            f"{prefix}.ssl.keystore.type=PKCS12",
            f"{prefix}.ssl.keystore.location={keystore}",
            f"{prefix}.ssl.keystore.password={password}",
            f"{prefix}.ssl.key.password={password}",
            f"{prefix}.ssl.client.auth=none",
        ]

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker by its PID (SIGTERM, then SIGKILL); False if none was running."""
        state = self.status()
        if state is None:
            return False
        pid = int(str(state["pid"]))
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _is_our_broker(pid):
            time.sleep(0.1)
        if _is_our_broker(pid):
            _signal(pid, signal.SIGKILL)
            while _is_our_broker(pid):
                time.sleep(0.05)
        self._state_file.unlink(missing_ok=True)
        return True

    def restart(self, timeout_s: float = 120.0, progress: Progress = _stderr) -> str:
        """Stop the running broker and start it again on the same ports with the same data."""
        state = self.status()
        if state is None:
            raise BrokerError(f"no broker is running in {self.home}")
        self.stop()
        libs = fetch_jars(progress)
        props = self.home / "server.properties"
        java = shutil.which("java") or "java"
        out = (self.home / "logs" / "stdout.log").open("ab")
        proc = subprocess.Popen(
            [java, f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseSerialGC",
             "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
             f"-Dkafka.logs.dir={self.home / 'logs'}",
             f"-Dlog4j2.configurationFile={_LOG4J}",
             "-cp", f"{libs}/*", "kafka.Kafka", str(props)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        out.close()
        self._state_file.write_text(json.dumps({**state, "pid": proc.pid}))
        bootstrap = str(state["bootstrap"])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(
                    f"the broker exited with code {proc.returncode}; see {self.home / 'logs'}"
                )
            if asyncio.run(metadata_ready(bootstrap, timeout_s=2.0)):
                progress(f"broker restarted at {bootstrap}")
                return bootstrap
            time.sleep(0.2)
        self.stop()
        raise BrokerError(f"the broker did not come back within {timeout_s:.0f}s")

    def kill(self) -> None:
        """SIGKILL the broker (fault tests)."""
        state = self.status()
        if state is not None:
            _signal(int(str(state["pid"])), signal.SIGKILL)


def _make_keystore(folder: Path, ca_file: Path) -> tuple[Path, str]:
    """A fresh CA (``ca_file``) and a PKCS#12 keystore for 127.0.0.1 / localhost signed by it.

    Returns the keystore's path and password. Needs the ``cryptography`` package.
    """
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(tz=UTC)
    valid = (now - timedelta(hours=1), now + timedelta(days=30))

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("warroom local CA"))
        .issuer_name(name("warroom local CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    password = secrets.token_urlsafe(16)
    keystore = folder / "broker.p12"
    keystore.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"broker",
            key,
            cert,
            [ca_cert],
            serialization.BestAvailableEncryption(password.encode()),
        )
    )
    return keystore, password


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _is_our_broker(pid: int) -> bool:
    """True if ``pid`` is alive and is a Kafka broker (guards against a reused PID)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # A zombie (state Z) has exited but not been reaped by its parent yet.
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state != "Z" and b"kafka.Kafka" in cmdline


#: Broker defaults of :class:`LocalCluster`: what a production cluster runs with. Every topic
#: (the offsets and transaction-state topics included) has three replicas, a write with
#: ``acks=all`` needs two of them in sync, and a replica that fell behind never becomes leader.
CLUSTER_DURABILITY = (
    "default.replication.factor=3",
    "min.insync.replicas=2",
    "unclean.leader.election.enable=false",
    "offsets.topic.replication.factor=3",
    "transaction.state.log.replication.factor=3",
    "transaction.state.log.min.isr=2",
)

#: Timings of :class:`LocalCluster` so that a killed node is fenced and its partitions get a
#: new leader within seconds (Kafka's defaults: 9 s, 2 s, 30 s).
CLUSTER_FAILOVER = (
    "broker.session.timeout.ms=6000",
    "broker.heartbeat.interval.ms=1000",
    "replica.lag.time.max.ms=10000",
)


@dataclass(frozen=True)
class ClusterNode:
    """One combined broker+controller node of a :class:`LocalCluster`."""

    node_id: int
    port: int
    controller_port: int
    home: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class PartitionState:
    """Where a partition lives right now: its leader (-1: none), replicas and in-sync replicas."""

    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


async def _cluster_metadata(bootstrap: str, timeout_s: float) -> Any:
    """aiokafka's ``ClusterMetadata`` for every topic, from whichever listed broker answers
    (dead ones are skipped); raises if none does."""
    from aiokafka.client import AIOKafkaClient

    # Refused connections to a killed node are expected; don't print each one.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        return await asyncio.wait_for(client.fetch_all_metadata(), timeout_s)
    finally:
        await client.close()
        logging.getLogger("aiokafka").setLevel(logging.NOTSET)


async def cluster_brokers(bootstrap: str, timeout_s: float = 3.0) -> set[int]:
    """The ids of the brokers a metadata request reports as alive (empty if none answers)."""
    try:
        metadata = await _cluster_metadata(bootstrap, timeout_s)
    except Exception:
        return set()
    return {int(b.nodeId) for b in metadata.brokers()}


async def partition_states(
    bootstrap: str, topics: list[str], timeout_s: float = 5.0
) -> dict[tuple[str, int], PartitionState]:
    """Leader, replicas and in-sync replicas of every partition of ``topics``, by metadata."""
    metadata = await _cluster_metadata(bootstrap, timeout_s)
    # ClusterMetadata keeps each partition's replicas and ISR but only exposes its leader.
    partitions: dict[str, dict[int, Any]] = metadata._partitions
    return {
        (topic, p.partition): PartitionState(
            leader=int(p.leader), replicas=tuple(p.replicas), isr=tuple(p.isr)
        )
        for topic in topics
        for p in partitions.get(topic, {}).values()
    }


@dataclass
class LocalCluster:
    """A three-node Apache Kafka cluster in KRaft mode, every node broker and controller, from the
    same jars as :class:`LocalBroker`; data, configs, logs and PIDs live under ``home``.

    The static quorum is ``controller.quorum.voters=1@127.0.0.1:c1,2@...,3@...``; the broker
    defaults are :data:`CLUSTER_DURABILITY` (replication 3, ``min.insync.replicas=2``, no
    unclean leader election). :meth:`kill` SIGKILLs one node and :meth:`restart_node` starts it
    again on its ports and data, for fault tests.
    """

    home: Path
    size: int = 3
    heap: str = "384m"
    nodes: dict[int, ClusterNode] = field(default_factory=dict)
    _procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        """Every node's ``host:port``, comma-separated (what clients are given)."""
        return ",".join(n.bootstrap for n in self.nodes.values())

    def start(self, timeout_s: float = 180.0, progress: Progress = _stderr) -> str:
        """Format and start every node (fresh data), then wait until a metadata request sees all
        of them as brokers; returns the bootstrap list."""
        libs = fetch_jars(progress)
        shutil.rmtree(self.home, ignore_errors=True)
        ports = _distinct_ports(2 * self.size)
        self.nodes = {
            i: ClusterNode(i, ports[2 * i - 2], ports[2 * i - 1], self.home / f"node{i}")
            for i in range(1, self.size + 1)
        }
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes.values())
        cluster_id = _cluster_id()
        started = time.monotonic()
        for node in self.nodes.values():
            props = self._write_properties(node, voters)
            fmt = subprocess.run(
                [*self._jvm(libs, node), "kafka.tools.StorageTool", "format",
                 f"--cluster-id={cluster_id}", "-c", str(props)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if fmt.returncode != 0:
                raise BrokerError(f"formatting node {node.node_id} failed:\n{fmt.stderr}")
        for node in self.nodes.values():
            self._launch(libs, node)
        progress(f"waiting for {self.size} brokers at {self.bootstrap} ...")
        try:
            self._wait_for_all(started + timeout_s)
        except BrokerError:
            self.stop()
            raise
        progress(f"cluster ready at {self.bootstrap} in {time.monotonic() - started:.1f}s")
        return self.bootstrap

    def kill(self, node_id: int) -> None:
        """SIGKILL one node (no shutdown: its sockets drop and its partitions lose their leader)."""
        proc = self._procs.pop(node_id)
        proc.kill()
        proc.wait()

    def restart_node(self, node_id: int, timeout_s: float = 120.0) -> None:
        """Start a killed or stopped node again on its ports and data; wait until a metadata
        request sees every node as a broker again."""
        if node_id in self._procs:
            raise BrokerError(f"node {node_id} is running")
        self._launch(fetch_jars(), self.nodes[node_id])
        self._wait_for_all(time.monotonic() + timeout_s)

    def alive(self) -> list[int]:
        """The ids of the nodes whose process is running."""
        return sorted(i for i, p in self._procs.items() if p.poll() is None)

    async def leader_of(self, topic: str, partition: int) -> int:
        """The node that leads ``topic``'s ``partition`` right now (-1 while none does)."""
        states = await partition_states(self.bootstrap, [topic])
        return states[(topic, partition)].leader

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every running node, then SIGKILL whatever is left after ``timeout_s``."""
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout_s
        for proc in self._procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()

    def _wait_for_all(self, deadline: float) -> None:
        want = set(self.nodes)
        while time.monotonic() < deadline:
            for node_id, proc in self._procs.items():
                if proc.poll() is not None:
                    logs = self.nodes[node_id].home / "logs"
                    raise BrokerError(
                        f"node {node_id} exited with code {proc.returncode}; see {logs}"
                    )
            if asyncio.run(cluster_brokers(self.bootstrap, timeout_s=2.0)) == want:
                return
            time.sleep(0.2)
        raise BrokerError(f"the cluster did not see all of {sorted(want)} in time")

    def _write_properties(self, node: ClusterNode, voters: str) -> Path:
        (node.home / "logs").mkdir(parents=True, exist_ok=True)
        props = node.home / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    f"node.id={node.node_id}",
                    f"controller.quorum.voters={voters}",
                    f"listeners=PLAINTEXT://{node.bootstrap},"
                    f"CONTROLLER://127.0.0.1:{node.controller_port}",
                    f"advertised.listeners=PLAINTEXT://{node.bootstrap}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={node.home / 'data'}",
                    "num.partitions=1",
                    "offsets.topic.num.partitions=4",
                    *CLUSTER_DURABILITY,
                    *CLUSTER_FAILOVER,
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "log.retention.hours=168",
                    "",
                ]
            )
        )
        return props

    def _jvm(self, libs: Path, node: ClusterNode) -> list[str]:
        java = shutil.which("java") or "java"
        return [
            java, f"-Xmx{self.heap}", "-Xms64m", "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={node.home / 'logs'}",
            f"-Dlog4j2.configurationFile={_LOG4J}",
            "-cp", f"{libs}/*",
        ]  # fmt: skip

    def _launch(self, libs: Path, node: ClusterNode) -> None:
        out = (node.home / "logs" / "stdout.log").open("ab")
        self._procs[node.node_id] = subprocess.Popen(
            [*self._jvm(libs, node), "kafka.Kafka", str(node.home / "server.properties")],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        out.close()


def _distinct_ports(count: int) -> list[int]:
    """``count`` different TCP ports on 127.0.0.1 that are free right now."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports
