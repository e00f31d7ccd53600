"""The engine of a batch job: Ray Data. The items become a dataset, mapped by a pool of actors
(:class:`~aecodec.batch.work.Worker`, the model loaded once per actor, on a GPU each where asked),
and their manifest rows stream back to the driver as they finish.

Ray is imported here and nowhere else in aecodec; :func:`ray_or_error` turns its absence into
the install hint. With no address a local Ray instance is started on this machine's cores (and
shut down at the end); ``address`` joins a running cluster (``auto``, ``ray://host:10001``, …).
A failure of the cluster while the rows stream back — a node or a worker dying (killed for memory,
a plasma store that cannot map its memory), an object lost, a worker that cannot start, the
connection to the cluster gone — ends :func:`run` with :class:`JobFailed`, in one line
(:func:`failure`), after the rows that finished went to ``on_row``. When the Ray node of the
driver's own machine dies (its raylet or object store killed), Ray's C++ core ends the driver
process at once (exit 1, nothing said, no Python code runs): :func:`driver_watched` leaves a small
process behind that says so, in one line, when that happens.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

from ..errors import BatchError, JobFailed, one_line
from .work import Item, Job, Worker

__all__ = ["BatchError", "JobFailed", "Pool", "connected", "driver_watched", "failure", "plan_pool", "ray_or_error",
           "run"]

INSTALL_HINT = "aecodec batch needs Ray: pip install 'aecodec[cluster]'"
MAX_BLOCKS = 20_000  # one block per item up to this many (a worker takes a block at a time)


def ray_or_error():
    """The ``ray`` module (with Ray Data), or :class:`BatchError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the part aecodec uses; it needs pyarrow)
    except ImportError as exc:
        raise BatchError(f"{INSTALL_HINT} ({exc})") from None
    return ray


@dataclass(frozen=True)
class Pool:
    """The actors a job runs on: how many, the CPUs (= its transforms' threads) and GPUs each reserves."""

    workers: int
    cpus_per_worker: int
    gpus_per_worker: float

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_worker else "cpu"

    def describe(self) -> str:
        each = f"{self.cpus_per_worker} CPU" + ("s" if self.cpus_per_worker > 1 else "")
        if self.gpus_per_worker:
            each += f" + {self.gpus_per_worker:g} GPU"
        return f"{self.workers} worker{'s' if self.workers > 1 else ''} × {each}"


def plan_pool(resources: dict, node_cpus: Iterable[float], workers: int | None, cpus_per_worker: int | None,
              gpus_per_worker: float | None) -> Pool:
    """The pool for a cluster's ``resources`` (``ray.cluster_resources()``; ``node_cpus``: each
    node's CPUs). Defaults: on GPUs when the cluster has any (one per worker, one worker per GPU),
    else one single-threaded worker per CPU core, since single-threaded workers side by side code
    images faster than fewer workers with several threads each (benchmarks/batch.py measures it).
    ``workers`` alone shares the cores out among them."""
    cpus, gpus = int(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    largest = int(max(node_cpus, default=cpus))
    if workers is not None and workers < 1 or cpus_per_worker is not None and cpus_per_worker < 1:
        raise BatchError("--workers and --cpus-per-worker must be at least 1")
    if gpus_per_worker is not None and gpus_per_worker < 0:
        raise BatchError("--gpus-per-worker must be 0 or more")
    gpw = (1.0 if gpus else 0.0) if gpus_per_worker is None else float(gpus_per_worker)
    if gpw and gpw > gpus:
        raise BatchError(f"--gpus-per-worker {gpw:g}: the cluster has {gpus:g} GPUs")
    if cpus_per_worker is None:
        cpus_per_worker = 1 if workers is None or gpw else max(1, min(largest, cpus // workers))
    if workers is None:
        workers = max(1, int(gpus // gpw) if gpw else cpus // cpus_per_worker)
    if cpus_per_worker > largest:
        raise BatchError(f"--cpus-per-worker {cpus_per_worker}: no node of the cluster has that many CPUs "
                         f"(the largest has {largest})")
    if workers * cpus_per_worker > cpus:
        raise BatchError(f"{workers} workers × {cpus_per_worker} CPU{'s' if cpus_per_worker > 1 else ''} need "
                         f"{workers * cpus_per_worker} CPUs; the cluster has {cpus}")
    if workers * gpw > gpus + 1e-9:
        raise BatchError(f"{workers} workers × {gpw:g} GPUs need {workers * gpw:g} GPUs; the cluster has {gpus:g}")
    return Pool(workers, cpus_per_worker, gpw)


def _connect(ray, address: str | None) -> bool:
    """Start or join Ray quietly; True when this call started it (and so shuts it down).

    Ray's C++ core logs at ERROR, on the driver's stderr, a notice for every actor Ray Data
    creates (its constructor arguments live in the object store: ray-project/ray#53727), so its
    level is set to fatal unless the user set one; setting it makes ``ray.init`` print one line
    saying so, which is why stderr is closed while it runs (its failures are exceptions)."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    env = {k: os.environ[k] for k in ("AECODEC_MODEL_PATH",) if os.environ.get(k)}
    _check_reachable(address)
    try:
        with _stderr_closed(), _sigterm_kept():
            ray.init(address=address, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                     runtime_env={"env_vars": env} if env else None)
    except (ConnectionError, ValueError, RuntimeError) as exc:  # no cluster there, a bad address
        raise BatchError(f"--address {address}: {one_line(exc)}" if address else f"cannot start Ray: {one_line(exc)}") from None
    return True


@contextmanager
def _sigterm_kept():
    """``ray.init`` makes SIGTERM ``sys.exit`` the driver; the handler it replaces (the command's,
    which stops a job as Ctrl-C does, or the caller's) is put back."""
    main = threading.current_thread() is threading.main_thread()
    saved = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if saved is not None:
            signal.signal(signal.SIGTERM, saved)


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """A HOST:PORT (or ray://HOST:PORT) address that nothing answers is refused at once: Ray itself
    retries such an address for many minutes, silently."""
    if not address or "://" not in address and ":" not in address:
        return  # auto, local: Ray's own lookup, which fails at once
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise BatchError(f"--address {address}: no Ray cluster answers there ({exc.strerror or one_line(exc)})") from None


@contextmanager
def _stderr_closed():
    """File descriptor 2 on /dev/null for the duration (what C code writes there is dropped)."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _quiet(ray) -> None:
    """Ray Data's own progress bars and INFO lines off: the job shows one bar and one summary."""
    for name in ("ray", "ray.data"):  # ray.data has its own console handler (it does not propagate)
        logging.getLogger(name).setLevel(logging.CRITICAL)  # its errors reach us as exceptions
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


@contextmanager
def _cluster_errors_unprinted(ray):
    """While a job runs, Ray's driver does not print the cluster's error messages (a dead worker's
    traceback, "(raylet) … will be retried") on stdout from its listener thread: the job reports a
    failure itself, in one line, from the exception it gets. Put back on the way out, for a caller's
    own Ray. (A private hook of Ray's: where it is missing, the messages show.)"""
    module = getattr(getattr(ray, "_private", None), "worker", None)
    printer = getattr(module, "print_to_stdstream", None)
    if printer is None:
        yield
        return
    module.print_to_stdstream = lambda *args, **kwargs: None
    try:
        yield
    finally:
        module.print_to_stdstream = printer


@contextmanager
def connected(address: str | None = None, workers: int | None = None, cpus_per_worker: int | None = None,
              gpus_per_worker: float | None = None):
    """Ray started (or joined, at ``address``) and the :class:`Pool` planned for it — before a job
    touches any folder, so that one which cannot start leaves nothing behind. A Ray this started is
    shut down on the way out."""
    ray = ray_or_error()
    started = _connect(ray, address)
    with _cluster_errors_unprinted(ray):
        try:
            _quiet(ray)
            nodes = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
            yield plan_pool(ray.cluster_resources(), nodes, workers, cpus_per_worker, gpus_per_worker)
        finally:
            if started:
                ray.shutdown()


def run(job: Job, items: list[Item], pool: Pool, on_row: Callable[[dict], None]) -> None:
    """Work on ``items`` in ``pool``, a pool of Ray actors (:func:`connected`); ``on_row`` gets each
    item's manifest row on the driver, in the order they finish. A failure of the cluster raises
    :class:`JobFailed` (:func:`failure` says what failed); ``on_row``'s own errors pass through."""
    import ray

    if not items:
        return
    rows = [{"item": json.dumps(asdict(item))} for item in items]
    try:
        ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), MAX_BLOCKS))
        ds = ds.map_batches(Worker, fn_constructor_kwargs={"job": job.to_dict(), "threads": pool.cpus_per_worker,
                                                           "device": pool.device},
                            batch_size=1, compute=ray.data.ActorPoolStrategy(size=pool.workers),
                            num_cpus=pool.cpus_per_worker, num_gpus=pool.gpus_per_worker or None)
        stream = iter(ds.iter_rows())
    except Exception as exc:  # the items could not be put in the object store, …
        raise JobFailed(failure(exc)) from None
    while True:
        try:
            r = next(stream)
        except StopIteration:
            return
        except Exception as exc:  # Ray's (RayError and its kin: a node, a worker, an object, the connection)
            raise JobFailed(failure(exc)) from None
        on_row(json.loads(r["row"]))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXC_NAME = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|NotFound): ")  # "aecodec.errors.ModelNotFound: "
_RAY_KINDS = (  # (Ray's exception class name, what it means, whether its first line adds to it), most specific first
    ("OutOfMemoryError", "a worker was killed for memory", False),
    ("OutOfDiskError", "a node ran out of disk space", False),
    ("ObjectStoreFullError", "Ray's object store is full", False),
    ("LocalRayletDiedError", "the Ray node of this machine died", False),
    ("NodeDiedError", "a node of the cluster died", True),
    ("WorkerCrashedError", "a worker crashed", False),
    ("ObjectLostError", "data the job needed was lost (its node died?)", False),
    ("ActorUnavailableError", "a worker became unreachable", False),
    ("RayActorError", "a worker died", False),
    ("GetTimeoutError", "the cluster stopped answering", True),
    ("RpcError", "the connection to the cluster failed", True),
    ("RaySystemError", "Ray failed", True),
    ("RayError", "Ray failed", True),
    ("ConnectionError", "the connection to the Ray cluster was lost", True),
)


def failure(exc: BaseException) -> str:
    """What a cluster failure was, in one line: the kind of failure, the worker (pid) and node (ip)
    where Ray says, and its cause — a worker that could not start (its model cannot be loaded, say)
    is named by the error it raised."""
    text = _ANSI.sub("", str(exc))
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and cause is not exc:  # RayTaskError: what the task raised
        return failure(cause) if _is_ray(cause) else f"a worker failed{_where(exc, text)}: {_short(cause)}"
    if getattr(exc, "actor_init_failed", False) or "creation task" in text:  # its constructor raised: the last
        # line of the traceback in the message says what
        last = _EXC_NAME.sub("", [line.strip() for line in text.splitlines() if line.strip()][-1])
        return f"a worker could not start{_where(exc, text)}: {last}"
    names = {c.__name__ for c in type(exc).__mro__}
    kind = next(((what, first) for name, what, first in _RAY_KINDS if name in names), None)
    if kind is None:
        return _short(exc)
    what, first = kind
    detail = re.search(r"exit detail: ([^.]+)", text)
    extra = one_line(_ANSI.sub("", text)) if first and text.strip() else detail.group(1).strip() if detail else ""
    return f"{what}{_where(exc, text)}" + (f": {extra}" if extra else "")


def _is_ray(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] == "ray"


def _short(exc: BaseException) -> str:
    """An exception in one line: aecodec's own by its message, others by type and first line."""
    from ..errors import AecodecError

    line = _ANSI.sub("", one_line(exc))
    return line if isinstance(exc, AecodecError) else f"{type(exc).__name__}: {line}"


def _where(exc: BaseException, text: str) -> str:
    """`` (worker pid N on IP)`` from the exception's attributes or a Ray message that names them."""
    pid = getattr(exc, "pid", None) or (m.group(1) if (m := re.search(r"\bpid[=:]\s*(\d+)", text, re.I)) else None)
    ip = getattr(exc, "ip", None) or (m.group(1) if (m := re.search(r"\bip(?: address)?[=:]\s*([0-9A-F.:]*[0-9A-F])",
                                                                     text, re.I)) else None)
    parts = ([f"worker pid {pid}"] if pid else []) + ([f"on {ip}"] if ip else [])
    return f" ({' '.join(parts)})" if parts else ""


_WATCHER = """
import os, sys
fd, partial, line = int(sys.argv[1]), sys.argv[2], sys.argv[3]
said = b""
while True:
    chunk = os.read(fd, 64)
    if not chunk:
        break
    said += chunk
if not said.endswith(b"ok"):
    try:
        with open(partial, "rb") as f:
            finished = sum(1 for _ in f)
    except OSError:
        finished = 0
    sys.stderr.write(("\\r\\x1b[K" if sys.stderr.isatty() else "") + line.replace("{finished}", str(finished)) + "\\n")
"""


@contextmanager
def driver_watched(partial: Path, total: int):
    """While the job runs, a process of a few MB waits on a pipe from this one: if this process ends
    without passing through here on its way out — Ray's core killed it because the Ray node of this
    machine died (a raylet or plasma store killed for memory, an object store that cannot map its
    memory), or the system killed it — the watcher writes the job's one error line on the same
    stderr: what happened and where the manifest of the images that finished is."""
    line = (f"aecodec: error: batch job stopped: the process was ended at once, by Ray when the Ray node of this "
            f"machine died (its raylet or object store failed or was killed: out of memory?) or by a signal; "
            f"{{finished}} of {total} images finished, their rows are in {partial}, and a rerun resumes")
    read, write = os.pipe()
    try:
        watcher = subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCHER, str(read), str(partial), line],
                                   pass_fds=(read,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   start_new_session=True)  # Ctrl-C is the driver's to report
    except OSError:  # no process to spare: the job runs unwatched
        os.close(read)
        os.close(write)
        yield
        return
    os.close(read)
    try:
        yield
    finally:
        os.write(write, b"ok")
        os.close(write)
        watcher.wait()
