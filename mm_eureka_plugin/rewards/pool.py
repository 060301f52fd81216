"""A small pool of worker processes that runs CPU-bound checks with a hard deadline per task.

Why processes: math-verify bounds its own time with ``signal.alarm``, which only works on the main
thread, and OpenRLHF calls rewards from worker threads (``asyncio.to_thread``). Each worker here runs
tasks on its own main thread, and a task that overruns is stopped:

- at ``timeout`` seconds a timer inside the worker interrupts Python code (the worker survives);
- at ``timeout + KILL_GRACE_S`` the parent kills the worker (C code that never checks for signals)
  and starts a replacement in the background.

So a task costs at most ``timeout + KILL_GRACE_S`` seconds of a worker. Workers are fresh
interpreters (``sys.executable``, the parent's ``sys.path``) started lazily on first use: not forked
(unsafe in a process holding threads, CUDA or Ray state) and not ``multiprocessing`` "spawn" (which
re-imports the caller's ``__main__`` script in every worker). They import ``preload`` before taking
work, run with an address-space limit (``RLIMIT_AS = memory_limit_mb``), ignore SIGINT, and exit
when their parent goes away. Shared pools (:func:`shared_pool`) are closed at interpreter exit. A pool is thread-safe:
concurrent callers share its workers. A task is named by reference, ``"package.module:function"``,
and imported in the worker, so the caller never imports what the workers run.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

logger = logging.getLogger(__name__)

KILL_GRACE_S = 0.5
START_ATTEMPTS = 3
"""Tries to start a worker before its slot is given up."""
STARTUP_TIMEOUT_S = 120.0
TIMEOUT = "timeout"
_READY = "ready"
_BOOTSTRAP = """
import sys
from multiprocessing.connection import Connection
conn = Connection(int(sys.argv[1]))
try:
    sys.path[:] = conn.recv()
except (EOFError, OSError):  # the parent went away while starting us
    sys.exit(0)
from mm_eureka_plugin.rewards import pool
pool._worker_main(conn, *conn.recv())
"""


@dataclass(frozen=True)
class Outcome:
    """What one task gave: its return ``value``, or ``error`` (``"timeout"``, or the exception)."""

    value: Any = None
    error: str | None = None


class _Overrun(BaseException):
    """Raised inside a worker when its task's time is up (BaseException: ``except Exception`` misses it)."""


_armed = False


def _on_alarm(signum, frame) -> None:
    if _armed:
        raise _Overrun()


def _arm(seconds: float) -> None:
    global _armed
    _armed = True
    signal.setitimer(signal.ITIMER_REAL, seconds)


def _disarm() -> None:
    global _armed
    _armed = False
    signal.setitimer(signal.ITIMER_REAL, 0)


def resolve_task(ref: str) -> Callable[..., Any]:
    """The function named by ``"package.module:function"``."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _worker_main(conn: Connection, memory_limit_mb: int | None, preload: tuple[str, ...]) -> None:
    """A worker's loop: receive ``(task, args, timeout)``, send back ``(value, error)``; exit on EOF
    or when the parent process is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    signal.signal(signal.SIGALRM, _on_alarm)
    if memory_limit_mb:
        import resource

        limit = memory_limit_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for module in preload:
        importlib.import_module(module)
    parent = os.getppid()
    tasks: dict[str, Callable[..., Any]] = {}
    try:
        conn.send(_READY)
        while True:
            while not conn.poll(1.0):
                if os.getppid() != parent:
                    return
            conn.send(_run_task(tasks, *conn.recv()))
    except (EOFError, OSError):  # the parent closed the connection or went away
        return


def _run_task(tasks: dict[str, Callable[..., Any]], ref: str, args: tuple, timeout: float) -> tuple[Any, str | None]:
    """``(value, None)`` of the task, or ``(None, error)``: ``"timeout"`` after ``timeout`` seconds."""
    try:
        _arm(timeout)
        if ref not in tasks:
            tasks[ref] = resolve_task(ref)
        value = tasks[ref](*args)
        _disarm()
        return value, None
    except _Overrun:
        _disarm()
        return None, TIMEOUT
    except Exception as exc:
        _disarm()
        return None, f"{type(exc).__name__}: {exc}"[:500]


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen
    conn: Connection

    def usable(self) -> bool:
        """Alive, with nothing to read (an idle worker that died leaves an end-of-file)."""
        return self.process.poll() is None and not self.conn.poll()


class WorkerPool:
    """``size`` worker processes; :meth:`run` maps a task over argument tuples, each within a deadline."""

    def __init__(self, size: int, memory_limit_mb: int | None = 2048, preload: Sequence[str] = ()) -> None:
        if size < 1:
            raise ValueError(f"a worker pool needs at least 1 worker, got {size}.")
        if memory_limit_mb is not None and memory_limit_mb < 256:
            raise ValueError(f"memory_limit_mb must be at least 256 (or None for no limit), got {memory_limit_mb}.")
        self.size = size
        self.memory_limit_mb = memory_limit_mb
        self.preload = tuple(preload)
        self._cond = threading.Condition()
        self._idle: deque[_Worker] = deque()
        self._live = 0  # workers idle, busy or starting
        self._started = False
        self._closed = False
        self._start_error: str | None = None
        self.replaced = 0
        """Workers killed (over time, crashed) and replaced so far."""

    def run(self, task: str, args: Sequence[tuple], timeout: float) -> list[Outcome]:
        """``task(*a)`` for each ``a`` in ``args``, in parallel, each within ``timeout`` (+ grace) seconds.

        ``task`` is a ``"package.module:function"`` reference; arguments and return values must
        pickle. Raises RuntimeError only when the pool is closed or no worker could be started.
        """
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}.")
        self._ensure_started()
        outcomes: list[Outcome | None] = [None] * len(args)
        pending = deque(range(len(args)))
        held: dict[Connection, tuple[_Worker, int, float]] = {}
        try:
            while pending or held:
                while pending:
                    worker = self._checkout(block=not held)
                    if worker is None:
                        break
                    if not worker.usable():  # died while idle (killed from outside)
                        self._replace(worker)
                        continue
                    i = pending.popleft()
                    try:
                        worker.conn.send((task, args[i], timeout))
                    except OSError:  # died just now: run the task elsewhere
                        pending.appendleft(i)
                        self._replace(worker)
                        continue
                    except Exception as exc:  # the arguments cannot be pickled
                        outcomes[i] = Outcome(error=f"{type(exc).__name__}: {exc}")
                        self._checkin(worker)
                        continue
                    held[worker.conn] = (worker, i, time.monotonic() + timeout + KILL_GRACE_S)
                if not held:
                    continue
                soonest = min(deadline for _, _, deadline in held.values())
                for conn in wait(list(held), timeout=max(0.0, soonest - time.monotonic())):
                    worker, i, _ = held.pop(conn)
                    try:
                        value, error = conn.recv()
                    except (EOFError, OSError):
                        outcomes[i] = Outcome(error="verifier worker died (out of memory or crashed)")
                        self._replace(worker)
                        continue
                    outcomes[i] = Outcome(value, error)
                    self._checkin(worker)
                now = time.monotonic()
                for conn, (worker, i, deadline) in list(held.items()):
                    if deadline <= now:
                        del held[conn]
                        outcomes[i] = Outcome(error=TIMEOUT)
                        self._replace(worker)
        finally:
            for worker, _, _ in held.values():  # interrupted mid-task: their state is unknown
                self._replace(worker)
        return outcomes

    def close(self) -> None:
        """Kill every worker; later :meth:`run` calls raise. Idempotent."""
        with self._cond:
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            self._cond.notify_all()
        for worker in idle:
            self._kill(worker)

    def pids(self) -> list[int]:
        """The process ids of the idle workers."""
        with self._cond:
            return [w.process.pid for w in self._idle]

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> bool:
        """Start the workers if needed and wait until all ``size`` are idle; False on timeout."""
        self._ensure_started()
        with self._cond:
            return self._cond.wait_for(lambda: len(self._idle) >= self.size or self._closed, timeout)

    def _ensure_started(self) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the verifier worker pool is closed.")
            missing = self.size - self._live if (not self._started or self._live == 0) else 0
            self._started = True
            self._live += missing
        for _ in range(missing):
            self._start_async()

    def _start_async(self) -> None:
        threading.Thread(target=self._start_worker, name="mm-eureka-verifier-start", daemon=True).start()

    def _start_worker(self) -> None:
        """Start one worker and check it in; a failed start is retried (:data:`START_ATTEMPTS` in
        all: spawning can fail transiently, e.g. EFAULT or EAGAIN from exec under load)."""
        for attempt in range(1, START_ATTEMPTS + 1):
            error = self._try_start_worker()
            if error is None:
                return
            if attempt < START_ATTEMPTS:
                logger.warning("%s; retrying (%d of %d)", error, attempt + 1, START_ATTEMPTS)
                time.sleep(0.5 * attempt)
        logger.error(error)
        with self._cond:
            self._live -= 1
            self._start_error = error
            self._cond.notify_all()

    def _try_start_worker(self) -> str | None:
        """Start one worker and check it in; the error message when it could not start."""
        worker = None
        try:
            ours, theirs = socket.socketpair()
            with ours, theirs:
                process = subprocess.Popen(
                    [sys.executable, "-c", _BOOTSTRAP, str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                )
                worker = _Worker(process, Connection(ours.detach()))
            worker.conn.send(list(sys.path))
            worker.conn.send((self.memory_limit_mb, self.preload))
            if not worker.conn.poll(STARTUP_TIMEOUT_S) or worker.conn.recv() != _READY:
                raise RuntimeError(f"no ready signal within {STARTUP_TIMEOUT_S:.0f} s")
        except Exception as exc:
            if worker is not None:
                self._kill(worker)
            return f"a verifier worker failed to start: {type(exc).__name__}: {exc}"
        self._checkin(worker)
        return None

    def _checkout(self, block: bool) -> _Worker | None:
        with self._cond:
            while not self._idle:
                if self._closed:
                    raise RuntimeError("the verifier worker pool is closed.")
                if self._live == 0:
                    raise RuntimeError(self._start_error or "the verifier worker pool has no workers.")
                if not block:
                    return None
                self._cond.wait()
            return self._idle.popleft()

    def _checkin(self, worker: _Worker) -> None:
        with self._cond:
            if not self._closed:
                self._idle.append(worker)
                self._cond.notify_all()
                return
        self._kill(worker)

    def _replace(self, worker: _Worker) -> None:
        self._kill(worker)
        with self._cond:
            self.replaced += 1
            if self._closed:
                self._live -= 1
                return
        self._start_async()

    @staticmethod
    def _kill(worker: _Worker) -> None:
        worker.process.kill()
        try:
            worker.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.warning("verifier worker %d did not exit after SIGKILL", worker.process.pid)
        worker.conn.close()


_shared: dict[tuple, WorkerPool] = {}
_shared_lock = threading.Lock()


def shared_pool(size: int, memory_limit_mb: int | None, preload: Sequence[str]) -> WorkerPool:
    """The process-wide pool for these settings (created on first request, closed at exit)."""
    key = (size, memory_limit_mb, tuple(preload))
    with _shared_lock:
        pool = _shared.get(key)
        if pool is None or pool._closed:
            pool = _shared[key] = WorkerPool(size, memory_limit_mb, preload)
        return pool


@atexit.register
def close_shared_pools() -> None:
    """Close every shared pool (registered with atexit; tests call it too)."""
    with _shared_lock:
        pools = list(_shared.values())
        _shared.clear()
    for pool in pools:
        pool.close()
