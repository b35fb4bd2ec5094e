"""Reaching Ray: starting a local instance or connecting to a cluster, and sizing the worker pool.

Ray is imported only inside these functions (the CLI calls :func:`require` first, so a missing
extra is one sentence). Runs on the driver's main thread.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

from desktop.errors import UserError

INSTALL_HINT = 'The Ray engine needs the cluster extra: pip install "pipedesk[cluster]"'
#: CPUs per worker when the number of workers is not given (torch gains little past 4 threads).
CPUS_PER_WORKER = 4
#: Seconds to wait for a cluster's address to answer before saying it cannot be reached.
CONNECT_TIMEOUT_S = 5.0
#: Ray's switch between a one-machine instance on 127.0.0.1 ("0") and a cluster node.
ONE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def require() -> None:
    """UserError with the install line when Ray Data or pyarrow is missing."""
    try:
        import pyarrow  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise UserError(INSTALL_HINT) from None


@dataclass(frozen=True)
class Cluster:
    """Where to run: ``address`` (None: a local instance), how many workers, GPUs per worker."""

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float | None = None


@dataclass(frozen=True)
class WorkerPlan:
    """How many model-holding workers; the torch threads each runs, and the CPUs and GPUs each
    reserves in Ray (a little under its threads, see :func:`plan_workers`)."""

    workers: int
    threads: int
    cpus: float
    gpus: float

    def line(self) -> str:
        each = f"{self.threads} CPU" + ("s" if self.threads != 1 else "")
        if self.gpus:
            each = f"{self.gpus:g} GPU" + ("s" if self.gpus > 1 else "")
        return f"{self.workers} worker{'s' if self.workers != 1 else ''}, {each} each"


def plan_workers(nodes: list[dict[str, float]], workers: int | None, gpus: float | None) -> WorkerPlan:
    """Workers for ``nodes`` (each node's resources): one per GPU (or ``gpus`` each) when the cluster
    has GPUs, else one per :data:`CPUS_PER_WORKER` CPUs, sharing the CPUs when ``workers`` is given.

    Workers reserve all CPUs but one between them: Ray Data lists, reads and writes files in tasks
    of one CPU each, which would wait forever behind actors holding every CPU.
    """
    node_cpus = [node.get("CPU", 0.0) for node in nodes] or [1.0]
    node_gpus = [node.get("GPU", 0.0) for node in nodes]
    total = sum(node_cpus)
    if gpus is None:
        gpus = 1.0 if sum(node_gpus) else 0.0
    if gpus:
        fits = sum(int(count // gpus) for count in node_gpus)
        if not fits:
            raise UserError(f"--gpus-per-worker {gpus:g}: no machine of the Ray cluster has that many GPUs.")
        workers = workers or fits
        if workers > fits:
            raise UserError(
                f"{workers} workers with {gpus:g} GPU each do not fit: the Ray cluster has room for {fits}."
            )
        return WorkerPlan(workers, 1, round(min(1.0, max(0.0, total - 1) / workers), 3), gpus)
    largest = max(node_cpus)
    if workers is None:
        each = min(largest, CPUS_PER_WORKER)
        workers = max(1, sum(int(count // each) for count in node_cpus))
    else:
        each = min(largest, total / workers)
    spare = (total - 1) / total if total > 1 else 0.0
    return WorkerPlan(workers, max(1, int(each)), round(each * spare, 3), 0.0)


def connect(address: str | None) -> tuple[bool, bool]:
    """Make sure Ray is initialised: (whether this call started it, whether workers share this
    machine's folders). UserError in words when a cluster cannot be reached.

    A local instance (``address`` None) listens on 127.0.0.1 only: Ray's own ports take commands
    from anyone who reaches them, with no password. On Linux Ray binds them to the machine's
    network address unless told this is a one-machine instance (what it does by itself on
    Windows and macOS): ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` says so, for this process and
    the Ray processes it starts.
    """
    if address is None:
        os.environ[ONE_MACHINE] = "0"
    import ray

    if ray.is_initialized():
        return False, _local_only()
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # C++ chatter; errors are said in words
    options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address is None:
        from ray._private import ray_constants  # read when Ray was imported: told again

        ray_constants.ENABLE_RAY_CLUSTER = False
        ray.init(include_dashboard=False, **options)
        node = ray.util.get_node_ip_address()
        if not ipaddress.ip_address(node.strip("[]")).is_loopback:
            ray.shutdown()
            raise UserError(
                f"Ray started listening on {node}, not on this computer only: Pipedesk stopped it. "
                "Start a Ray instance yourself (ray start --head) and pass --ray-address."
            )
        return True, True
    _check_reachable(address)
    try:
        ray.init(address=address, **options)
    except ValueError as exc:
        if "ray[client]" in str(exc):
            raise UserError(
                'Connecting with ray:// needs Ray\'s client: pip install "ray[client]" '
                "(or run pipedesk on a machine of the cluster with --ray-address auto)."
            ) from None
        raise UserError(f"Could not connect to the Ray cluster at {address}: {first_line(exc)}") from None
    except (ConnectionError, OSError, RuntimeError, SystemExit) as exc:
        raise UserError(f"Could not connect to the Ray cluster at {address}: {first_line(exc)}") from None
    return True, _local_only()


def _local_only() -> bool:
    """True when every alive node of the connected cluster is this machine."""
    import ray

    here = {socket.gethostname()}
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    return all(node.get("NodeManagerHostname") in here for node in nodes)


def _check_reachable(address: str) -> None:
    """Refuse quickly an address nothing answers at (Ray itself retries for minutes, then exits)."""
    target = address.removeprefix("ray://")
    if address == "auto":
        target = os.environ.get("RAY_ADDRESS", "").removeprefix("ray://")
        if not target:
            return  # Ray finds the cluster this machine belongs to, or says there is none at once
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray-address {address}: give auto, host:port or ray://host:port.")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise UserError(
            f"Could not reach the Ray cluster at {address} ({exc.strerror or type(exc).__name__}). "
            "Check the address and that the cluster is running."
        ) from None


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
