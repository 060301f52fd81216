"""The worker pool: deadlines, replacement of dead workers, memory limit, threads, clean-up."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mm_eureka_plugin.rewards.pool import (
    KILL_GRACE_S,
    TIMEOUT,
    Outcome,
    WorkerPool,
    shared_pool,
)

SLACK_S = 1.0


@pytest.fixture(scope="module")
def pool():
    pool = WorkerPool(size=2, memory_limit_mb=512)
    assert pool.wait_ready(timeout=60)
    yield pool
    pool.close()


@pytest.fixture
def idle(pool):
    assert pool.wait_ready(timeout=60)
    return pool


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (gone, or a zombie nobody reaped)."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped, possibly while being read
        return True


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_tasks_run_in_parallel_in_the_workers(idle):
    workers = set(idle.pids())
    pids = idle.run("os:getpid", [()] * 4, timeout=5)
    assert {o.value for o in pids} <= workers and os.getpid() not in workers
    started = time.monotonic()
    assert idle.run("time:sleep", [(0.5,), (0.5,)], timeout=5) == [Outcome(), Outcome()]
    assert time.monotonic() - started < 0.95


def test_a_python_level_overrun_is_interrupted_and_the_worker_kept(idle):
    replaced = idle.replaced
    started = time.monotonic()
    assert idle.run("time:sleep", [(30,)], timeout=0.5) == [Outcome(error=TIMEOUT)]
    assert time.monotonic() - started < 0.5 + KILL_GRACE_S
    assert idle.replaced == replaced


def test_an_overrun_in_c_code_is_killed_and_replaced(idle):
    replaced = idle.replaced
    started = time.monotonic()
    # Minutes of C code that never checks for signals.
    assert idle.run("hashlib:pbkdf2_hmac", [("sha256", b"x", b"y", 10**9)], timeout=0.3) == [Outcome(error=TIMEOUT)]
    assert time.monotonic() - started < 0.3 + KILL_GRACE_S + SLACK_S
    assert idle.replaced == replaced + 1
    assert idle.run("operator:add", [(2, 3)], timeout=5) == [Outcome(5)]


def test_exceptions_come_back_as_errors(idle):
    outcomes = idle.run("math:sqrt", [(-1,), (4,)], timeout=5)
    assert outcomes == [Outcome(error="ValueError: math domain error"), Outcome(2.0)]
    assert idle.run("os:no_such_function", [()], timeout=5)[0].error.startswith("AttributeError")
    assert idle.run("no_such_module_xyz:f", [()], timeout=5)[0].error.startswith("ModuleNotFoundError")


def test_memory_is_limited(idle):
    replaced = idle.replaced
    assert idle.run("builtins:bytearray", [(2 * 1024**3,)], timeout=5) == [Outcome(error="MemoryError: ")]
    assert idle.replaced == replaced


def test_a_worker_that_dies_mid_task_is_replaced(idle):
    replaced = idle.replaced
    outcomes = idle.run("os:_exit", [(3,)], timeout=5)
    assert "worker died" in outcomes[0].error
    assert idle.replaced == replaced + 1
    assert idle.run("operator:add", [(i, 1) for i in range(4)], timeout=5) == [Outcome(i + 1) for i in range(4)]


def test_concurrent_callers_share_the_workers(idle):
    results = {}

    def call(i: int) -> None:
        results[i] = idle.run("operator:mul", [(i, j) for j in range(3)], timeout=5)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: [Outcome(i * j) for j in range(3)] for i in range(8)}


def test_close_kills_the_workers_and_refuses_work():
    pool = WorkerPool(size=2, memory_limit_mb=None)
    assert pool.wait_ready(timeout=60)
    pids = pool.pids()
    pool.close()
    assert all(gone(pid) for pid in pids)
    with pytest.raises(RuntimeError, match="closed"):
        pool.run("operator:add", [(1, 2)], timeout=5)


def test_workers_exit_when_their_parent_dies():
    script = (
        "from mm_eureka_plugin.rewards.pool import WorkerPool\n"
        "pool = WorkerPool(size=2)\n"
        "assert pool.wait_ready(60)\n"
        "print(*pool.pids(), flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
    finally:
        parent.kill()
        parent.wait()
    assert len(pids) == 2
    assert wait_until(lambda: all(gone(pid) for pid in pids), timeout=10)


def test_a_pool_whose_workers_cannot_start_says_why():
    pool = WorkerPool(size=1, preload=("no_such_module_xyz",))
    try:
        with pytest.raises(RuntimeError, match="failed to start"):
            pool.run("operator:add", [(1, 2)], timeout=5)
    finally:
        pool.close()


def test_a_worker_whose_spawn_fails_once_is_started_again(monkeypatch, caplog):
    import subprocess

    real_popen, calls = subprocess.Popen, []

    def flaky_popen(*args, **kwargs):  # exec failing once, as seen on a loaded CI machine
        calls.append(args)
        if len(calls) == 1:
            raise OSError(14, "Bad address")
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", flaky_popen)
    pool = WorkerPool(size=1)
    try:
        assert pool.run("operator:add", [(1, 2)], timeout=5)[0].value == 3
    finally:
        pool.close()
    assert len(calls) == 2
    assert "failed to start: OSError: [Errno 14] Bad address; retrying (2 of 3)" in caplog.text


def test_shared_pools_are_one_per_setting():
    first = shared_pool(1, None, ())
    assert shared_pool(1, None, ()) is first
    assert shared_pool(1, 512, ()) is not first
    first.close()
    assert shared_pool(1, None, ()) is not first  # a closed pool is replaced
    shared_pool(1, None, ()).close()
    shared_pool(1, 512, ()).close()


def test_shared_pools_are_closed_at_interpreter_exit():
    script = (
        "from mm_eureka_plugin.rewards.pool import shared_pool\n"
        "pool = shared_pool(2, None, ())\n"
        "assert pool.wait_ready(60)\n"
        "print(*pool.pids())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2 and all(gone(pid) for pid in pids)
    assert out.stderr == ""


@pytest.mark.parametrize(("kwargs", "message"), [({"size": 0}, "at least 1"), ({"memory_limit_mb": 10}, "256")])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WorkerPool(**{"size": 1, **kwargs})


def test_a_timeout_must_be_positive(idle):
    with pytest.raises(ValueError, match="timeout"):
        idle.run("operator:add", [(1, 2)], timeout=0)
