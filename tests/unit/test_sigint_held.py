"""scale_out._sigint_held: a Ctrl-C inside takes effect as the block ends; threads
started inside keep SIGINT blocked (so do the processes they start)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from voipscope.scale_out import _sigint_held


def _blocked_here() -> bool:
    return signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_a_ctrl_c_inside_is_raised_when_the_block_ends() -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt), _sigint_held(block=True):
        os.kill(os.getpid(), signal.SIGINT)
        reached.append("after the signal")  # not cut off here
    assert reached == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not _blocked_here()


def test_without_a_ctrl_c_nothing_changes() -> None:
    with _sigint_held(block=True):
        assert _blocked_here()
    with _sigint_held():
        assert not _blocked_here()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not _blocked_here()


def test_a_second_ctrl_c_takes_effect_at_once() -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt), _sigint_held():
        os.kill(os.getpid(), signal.SIGINT)
        reached.append("after the first")
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs between bytecodes: soon
            pass
        reached.append("after the second")
    assert reached == ["after the first"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_mask_found_is_put_back() -> None:
    """Nested holds keep SIGINT blocked until the outer one ends; a caller that blocks
    SIGINT on purpose (sigwait) keeps it blocked, with its pending signal, after."""
    with _sigint_held(block=True):
        with _sigint_held(block=True):
            pass
        assert _blocked_here()
    assert not _blocked_here()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        # Pending for this thread alone (a process-directed one would go to any other
        # thread of the test run that has SIGINT unblocked).
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        with _sigint_held(block=True):
            pass
        assert _blocked_here() and signal.SIGINT in signal.sigpending()
        assert signal.sigwait({signal.SIGINT}) == signal.SIGINT
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_the_handler_set_before_gets_the_signal() -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: seen.append(signum))
    try:
        with _sigint_held():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the hold's handler runs between bytecodes
                pass
            assert seen == []
        assert seen == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_threads_and_their_processes_keep_it_blocked() -> None:
    masks: dict[str, bool] = {}

    def thread() -> None:
        masks["thread"] = _blocked_here()
        # A process started by that thread: its mask, as /proc shows it (bit 2 = SIGINT).
        status = subprocess.run(["cat", "/proc/self/status"], capture_output=True, text=True)
        blocked = next(x for x in status.stdout.splitlines() if x.startswith("SigBlk:"))
        masks["process"] = bool(int(blocked.split()[1], 16) & (1 << (signal.SIGINT - 1)))

    with _sigint_held(block=True):
        started = threading.Thread(target=thread)
        started.start()
    started.join()
    assert masks == {"thread": True, "process": True}
    assert not _blocked_here()


def test_outside_the_main_thread_it_does_nothing() -> None:
    out: list[object] = []

    def thread() -> None:
        with _sigint_held(block=True):
            out.append(_blocked_here())

    started = threading.Thread(target=thread)
    started.start()
    started.join()
    assert out == [False]


@pytest.mark.skipif(sys.platform != "linux", reason="/proc")
def test_a_ctrl_c_while_a_cluster_starts_undoes_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Python API: a Ctrl-C to the process group as the local cluster starts ->
    KeyboardInterrupt from ScaleOut once it has started, and it is closed again: no
    worker, no directory left, nothing said (the workers never saw the signal)."""
    script = tmp_path / "start.py"
    script.write_text(
        "import glob, os, signal, tempfile, threading, time\n"
        "import distributed\n"  # imported: the signal comes while the cluster starts
        "from voipscope.scale_out import ScaleOut\n"
        "def children():\n"
        "    return ''.join(open(f).read() for f in glob.glob('/proc/self/task/*/children'))\n"
        "def workers():\n"
        "    cmdlines = [open(f'/proc/{c}/cmdline').read() for c in children().split()]\n"
        "    return [c for c in cmdlines if 'resource_tracker' not in c]\n"
        "def watch():\n"
        "    while not workers():\n"  # the first worker process the cluster starts
        "        time.sleep(0.005)\n"
        "    os.killpg(0, signal.SIGINT)\n"  # as a terminal's Ctrl-C: every process
        "if __name__ == '__main__':\n"
        "    threading.Thread(target=watch, daemon=True).start()\n"
        "    try:\n"
        "        ScaleOut(workers=1)\n"
        "    except KeyboardInterrupt:\n"
        "        print('interrupted', os.listdir(tempfile.gettempdir()), workers())\n"
    )
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "TMPDIR": str(scratch)},
                         start_new_session=True)  # fmt: skip
    assert run.returncode == 0 and run.stdout.strip() == "interrupted [] []" and not run.stderr, (
        run.stderr
    )
