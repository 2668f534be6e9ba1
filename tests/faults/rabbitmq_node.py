"""A private RabbitMQ node with the management plugin, for tests that need its HTTP API
(queue inspection, KEDA's ``protocol: http``). The shared node has no management plugin
and is never touched.

The node runs ``rabbitmq-server`` in the foreground in its own process group, with its
own node name (``aj-test-<random>@localhost``), free ports (AMQP, management, Erlang
distribution), and every file in a temporary directory: configuration, enabled plugins,
Mnesia, logs, and the Erlang cookie (``HOME``). The system's ``/etc/rabbitmq`` files are
not read (``RABBITMQ_CONF_ENV_FILE`` and ``RABBITMQ_CONFIG_FILE`` point into the
directory). It registers with the running ``epmd`` like any node; nothing else is shared.
Statistics are collected every 0.5 s (5 s by default) so management figures settle fast.

    with PrivateRabbit(tmp_path / "rabbit") as node:
        node.amqp_url, node.management_url

``rabbitmq_node`` is a session-scoped fixture: one node for the whole run (it takes a
few seconds to start), stopped at the end, even when tests fail. Where RabbitMQ is not
installed the tests using it are skipped (failed when ``CI`` is set).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

from example.processes import ManagedProcess, ProcessError, free_port

HOST = "127.0.0.1"
USER = PASSWORD = "guest"  # created on the first boot; allowed from loopback only
SERVER_CANDIDATES = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/sbin/rabbitmq-server")


def rabbitmq_server_binary() -> str:
    """The ``rabbitmq-server`` start script to run in the foreground.

    The Debian wrapper in ``/usr/sbin`` switches to the ``rabbitmq`` user and redirects
    the output; the script it wraps is used when present. Override with
    ``ASYNCJOBS_TEST_RABBITMQ_SERVER``. Skips (fails under CI) when there is none.
    """
    binary = os.environ.get("ASYNCJOBS_TEST_RABBITMQ_SERVER")
    if not binary:
        found = [path for path in SERVER_CANDIDATES if os.access(path, os.X_OK)]
        binary = found[0] if found else shutil.which("rabbitmq-server")
    if not binary:
        message = "rabbitmq-server is not installed (needed for a private RabbitMQ node)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}, and CI is set: install rabbitmq-server >= 3.10")
        pytest.skip(message)
    return binary


class PrivateRabbit:
    """One RabbitMQ node with ``rabbitmq_management``, on free ports."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.node_name = f"aj-test-{uuid.uuid4().hex[:8]}@localhost"
        self.amqp_port = free_port()
        self.management_port = free_port()
        self.dist_port = free_port()
        self.process: ManagedProcess | None = None

    @property
    def amqp_url(self) -> str:
        return f"amqp://{USER}:{PASSWORD}@{HOST}:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        return f"http://{USER}:{PASSWORD}@{HOST}:{self.management_port}/"

    def env(self) -> dict[str, str]:
        d = self.work_dir
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(d),  # the Erlang cookie is created here
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "rabbitmq.pid"),
            "RABBITMQ_LOGS": "-",  # to stdout, i.e. the process log
            "ERL_EPMD_ADDRESS": HOST,
            # The distribution port listens on loopback only, like the shared node's.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _write_config(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        (self.work_dir / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's
        (self.work_dir / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (self.work_dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = {HOST}:{self.amqp_port}\n"
            f"management.tcp.ip = {HOST}\n"
            f"management.tcp.port = {self.management_port}\n"
            "collect_statistics_interval = 500\n"
        )

    def start(self, timeout_s: float = 90.0) -> PrivateRabbit:
        """Start the node; returns once AMQP accepts connections and the API answers."""
        if self.process is not None and self.process.alive():
            raise ProcessError(f"RabbitMQ node {self.node_name} is already running")
        self._write_config()
        self.process = ManagedProcess(
            f"rabbitmq-{self.node_name}",
            [rabbitmq_server_binary()],
            log_path=self.work_dir / "rabbitmq.log",
            env=self.env(),
            cwd=self.work_dir,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise ProcessError(f"RabbitMQ exited at start\n{self.process.describe(60)}")
            if self._amqp_open() and self._answers_as_itself():
                return self
            time.sleep(0.2)
        description = self.process.describe(60)
        self.stop()
        raise ProcessError(f"RabbitMQ not ready after {timeout_s:.0f} s\n{description}")

    def _amqp_open(self) -> bool:
        try:
            with socket.create_connection((HOST, self.amqp_port), 0.5):
                return True
        except OSError:
            return False

    def _answers_as_itself(self) -> bool:
        """Whether this node answers on its management port and listens for AMQP on its
        port: a port both test lines of CI picked (``free_port`` in two processes) must
        not let a test freeze or stop one node while it talks to another."""
        overview = self.api("/api/overview", quiet=True)
        if not isinstance(overview, dict) or overview.get("node") != self.node_name:
            return False
        listeners = overview.get("listeners") or []
        return any(
            entry.get("node") == self.node_name
            and entry.get("protocol") == "amqp"
            and entry.get("port") == self.amqp_port
            for entry in listeners
        )

    def api(self, path: str, *, quiet: bool = False) -> object:
        """GET ``path`` of the management API as JSON (None on failure when ``quiet``)."""
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request = urllib.request.Request(
            f"http://{HOST}:{self.management_port}{path}",
            headers={"Authorization": f"Basic {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            if quiet:
                return None
            raise

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (RabbitMQ shuts down cleanly), SIGKILL to the group after ``timeout_s``."""
        if self.process is not None:
            self.process.stop(timeout_s=timeout_s)

    def describe(self, lines: int = 40) -> str:
        if self.process is None:
            return f"RabbitMQ node {self.node_name}: never started"
        return self.process.describe(lines)

    def __enter__(self) -> PrivateRabbit:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@pytest.fixture(scope="session")
def rabbitmq_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbit]:
    """A private RabbitMQ node with the management API, shared by the whole run."""
    rabbitmq_server_binary()  # skip early when RabbitMQ is not installed
    node = PrivateRabbit(tmp_path_factory.mktemp("rabbitmq-node"))
    try:
        node.start()
    except ProcessError as exc:
        node.stop()
        if os.environ.get("CI"):
            pytest.fail(f"could not start a private RabbitMQ node: {exc}")
        pytest.skip(f"could not start a private RabbitMQ node: {exc}")
    try:
        yield node
    finally:
        node.stop()
