"""``conveyor worker --processes N``: N worker processes on one host under one command.

The supervisor imports the app once, then forks the children: they start with every module
already loaded (no second interpreter start-up), and a crashed child is replaced just as fast.
Forking is safe here because the supervisor has no threads and no broker connections yet. Each
child is an ordinary worker (its own event loop, its own leases); a child that dies unexpectedly
is replaced, and its leased tasks come back through lease expiry like any dead worker's. So is a
child that exits with code 0 without being asked to (task code that called ``os._exit(0)``);
only with ``--burst`` is a clean exit the end of the child's work. A child that retired itself
(``--max-tasks-per-child``, ``--max-memory-per-child``) exits with ``RECYCLED`` and is replaced
at once, even with ``--burst``. A child stopped by ``conveyor control shutdown`` exits with
``SHUT_DOWN`` and is not replaced (nor kept replaced: one shut down while it retired stops the
replacement already started beside it). A child that begins to retire on its task count says so
(``announce_retiring``: its pid in a page shared across the forks), and its replacement starts
beside it within a second while it lets its running tasks finish; its exit then only ends it
(not with --burst or --beat, nor where there is no ``sigtimedwait``: there a retiring child is
replaced when it exits). The supervisor waits with ``sigtimedwait`` on SIGCHLD (blocked in the
supervisor, unblocked in each child), at most a second at a time. The supervisor exits when
all children have. SIGTERM/SIGINT are
forwarded to the children. With ``pin`` (worker/cpus.py), child ``i`` holds itself to the
``i``-th CPU of the supervisor's affinity mask, read when the child starts (a cpuset may have
changed), before it starts a thread, so that every thread it starts later is held there too; a
replacement takes the CPU of the child it replaces. A supervisor killed outright
(SIGKILL, the OOM killer) takes its children with it: on Linux each child gets SIGTERM the
moment the supervisor is gone and shuts down as if asked, so no orphaned worker keeps taking
tasks beside the replacement command.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import signal
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

from .cpus import cpu_for, pin_process
from .heap import freeze_heap

logger = logging.getLogger("conveyor.supervisor")

RESTART_DELAY = 1.0  # pause before replacing a crashed child, so a crash loop cannot spin
# Exit code of a child that drained and retired after reaching a recycling limit. Not 0: a
# clean exit ends a --burst child's work, and a retirement must not.
RECYCLED = 75  # EX_TEMPFAIL
# Exit code of a child stopped by a ``shutdown`` control command (worker/control.py): the
# operator asked for one process fewer, so it is not replaced.
SHUT_DOWN = 64
# What a worker drains on; held across the forks of --processes and of -P processes.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# (In a --processes child) the pid of the supervisor that forked it: a stop signal that finds
# another parent came from the kernel because the supervisor died (``supervisor_gone``).
SUPERVISOR_PID: int | None = None
# A child that begins to retire on its task count (``announce_retiring``) writes its pid in its
# index's slot of this page, shared by the supervisor and every child it forks; the supervisor,
# which looks at least every ``WAKE_AT_LEAST``, starts its replacement beside it while the
# retiring process lets its running tasks finish (a long task may take minutes: the slots must
# not sit idle). No signal: one sent to a supervisor whose imports started a thread could land
# in that thread and kill it, and one sent after the supervisor died could reach a stranger.
_SLOT = struct.Struct("=i")
_RETIRING: mmap.mmap | None = None
# How a child that ended as expected while ``_ended``'s ``doing`` is logged.
_DONE = {"retiring": "retired", "stopping": "stopped; not replaced"}
# The supervisor waits for SIGCHLD (blocked, taken with sigtimedwait) or at most this long.
WAKE_AT_LEAST = 1.0


class Supervisor:
    """Runs ``target(index)`` in ``processes`` forked children (index 1..N)."""

    def __init__(
        self,
        target: Callable[[int], None],
        processes: int,
        replace_clean_exits: bool = True,
        pin: bool = False,
        early_replacement: bool = True,
    ) -> None:
        self.target = target
        self.processes = processes
        self.replace_clean_exits = replace_clean_exits
        self.pin = pin
        self.children: dict[int, int] = {}  # pid -> index
        self.replaced: set[int] = set()  # retiring children whose replacement already started
        # Replacements stopped because the child they replaced was shut down by control: the
        # operator asked for one process fewer, and that index ends with them.
        self.unwanted: set[int] = set()
        # Off with --burst (a replacement finding the queues empty would exit before the
        # retiring one's follow-up work, a retry or a chain's next step, is queued) and with
        # --beat (the scheduler runs in child 1, built before the fork: two would share an owner).
        self.early_replacement = early_replacement and replace_clean_exits
        self.stopping = 0

    def _spawn(self, index: int) -> None:
        supervisor = os.getpid()
        cpu = cpu_for(index) if self.pin else None
        # Stop signals are held across the fork: one landing in the child before it has its
        # own handler would run the supervisor's (forwarding it to the siblings, while the
        # child went on to start a worker no one would stop).
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        if self.stopping:  # asked to stop since this start was decided (a restart's pause)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            return
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            raise
        if pid == 0:  # the child: run the worker, never return into the supervisor's code
            code = 1
            try:
                for signum in STOP_SIGNALS:
                    signal.signal(signum, _stop_before_work)  # until the worker installs its own
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})  # the supervisor's waiting
                _stop_with(supervisor)
                os.environ["CONVEYOR_PROCESS_INDEX"] = str(index)
                if cpu is not None:
                    pin_process(cpu)
                self.target(index)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                logger.exception("worker process %d failed", index)
            finally:
                flush_output()
                os._exit(code)
        self.children[pid] = index
        # A stop that came meanwhile is handled now, and forwarded to this child as well.
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        on = "" if cpu is None else f" on CPU {cpu}"
        logger.info("started worker process %d (pid %d)%s", index, pid, on)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stopping += 1
        for pid in list(self.children):
            if pid in self.unwanted and self.stopping == 1:
                # Draining already, on the supervisor's own SIGTERM: the operator's first stop
                # must not become the second signal that stops it at once (their second does).
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def run(self) -> int:
        global _RETIRING
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)
        # Where there is no sigtimedwait (macOS), a retiring child is replaced when it exits.
        early = self.early_replacement and hasattr(signal, "sigtimedwait")
        if early:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
            _RETIRING = mmap.mmap(-1, _SLOT.size * (self.processes + 1))  # shared with the children
        freeze_heap()  # the children share the imported app's pages with it (worker/heap.py)
        for index in range(1, self.processes + 1):
            self._spawn(index)
        exit_code = 0
        while self.children:
            self._replace_retiring()
            try:
                pid, status = os.waitpid(-1, os.WNOHANG if early else 0)  # (handlers run meanwhile)
            except ChildProcessError:
                break
            if pid == 0:  # none has exited: wait for one to (or look at retiring ones again)
                signal.sigtimedwait({signal.SIGCHLD}, WAKE_AT_LEAST)  # stop signals' handlers run
                continue
            if pid not in self.children:
                continue
            index = self.children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            replaced = pid in self.replaced
            self.replaced.discard(pid)
            if pid in self.unwanted:
                self.unwanted.discard(pid)
                exit_code = exit_code or self._ended(index, pid, code, (0, SHUT_DOWN, RECYCLED), "stopping")
                continue
            if code == SHUT_DOWN:
                logger.info("worker process %d (pid %d) shut down by control; not replaced", index, pid)
                if replaced and not self.stopping:  # (stopping: every child was signalled already)
                    self._stop_replacements(index)
                continue
            if replaced:  # its replacement started when it began to retire
                exit_code = exit_code or self._ended(index, pid, code, (RECYCLED,), "retiring")
                continue
            if code == RECYCLED:
                if not self.stopping:  # no pause: it ran its share of tasks, it is no crash loop
                    logger.info("worker process %d (pid %d) retired; starting a fresh one", index, pid)
                    self._spawn(index)
                continue
            if self.stopping or (code == 0 and not self.replace_clean_exits):
                exit_code = exit_code or code
                continue
            logger.error("worker process %d (pid %d) died with exit code %d; restarting", index, pid, code)
            time.sleep(RESTART_DELAY)
            if not self.stopping:
                self._spawn(index)
        return exit_code

    def _ended(self, index: int, pid: int, code: int, clean: tuple[int, ...], doing: str) -> int:
        """Log the end of a child that is not to be replaced (it was ``doing`` something that
        ends it); the command's exit code it makes: its own failure's, once the command stops."""
        if code in clean:
            logger.info("worker process %d (pid %d) %s", index, pid, _DONE[doing])
            return 0
        logger.error("worker process %d (pid %d) ended with exit code %d while %s", index, pid, code, doing)
        return code if self.stopping else 0

    def _stop_replacements(self, index: int) -> None:
        """A retiring child was shut down by control (``conveyor control shutdown``) after its
        replacement started: a command sent to the node may have missed that replacement (it
        had not yet said it was alive), and one sent to the retiring process alone meant that
        index too. Either way the operator asked for one process fewer: the replacement
        drains like on SIGTERM and is not replaced."""
        page = _RETIRING
        if page is not None:  # a replacement that began to retire itself must not be replaced
            _SLOT.pack_into(page, index * _SLOT.size, 0)
        for pid, other in list(self.children.items()):
            if other == index and pid not in self.unwanted:
                self.unwanted.add(pid)
                logger.info(
                    "worker process %d (pid %d) replaced one shut down by control; stopping it", index, pid
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

    def _replace_retiring(self) -> None:
        """Start the replacement of every child that said it is retiring (``announce_retiring``),
        unless a predecessor of its index still drains too: then once that one has exited (or
        when it exits itself, whichever comes first). At most two processes per index, so
        concurrency and memory stay bounded."""
        page = _RETIRING
        if page is None:
            return
        for index in range(1, self.processes + 1):
            at = index * _SLOT.size
            (pid,) = _SLOT.unpack_from(page, at)
            if not pid:
                continue
            if any(self.children.get(other) == index for other in self.replaced):
                continue  # its predecessor still drains: looked at again once that one has exited
            _SLOT.pack_into(page, at, 0)
            if (
                self.stopping
                or self.children.get(pid) != index
                or pid in self.replaced
                or pid in self.unwanted
            ):
                continue  # stopping, gone already (replaced when reaped), seen before, or not wanted
            self.replaced.add(pid)
            logger.info(
                "worker process %d (pid %d) retiring: starting a fresh one beside it while it finishes "
                "its running tasks",
                index,
                pid,
            )
            self._spawn(index)


def announce_retiring() -> bool:
    """(A supervised worker process that begins to retire) Ask the supervisor to start its
    replacement now (it looks within ``WAKE_AT_LEAST``). False when there is no such supervisor
    (not supervised, --burst or --beat, no sigtimedwait): the caller simply retires."""
    index = int(os.environ.get("CONVEYOR_PROCESS_INDEX", "0") or 0)
    page = _RETIRING
    if page is None or SUPERVISOR_PID is None or (index + 1) * _SLOT.size > len(page) or index < 1:
        return False
    _SLOT.pack_into(page, index * _SLOT.size, os.getpid())
    return True


def supervisor_gone() -> int | None:
    """(A --processes child) The pid of its supervisor if that has died (this child was handed
    to another parent), else None: a SIGTERM then came from the kernel, not from an operator."""
    if SUPERVISOR_PID is None or os.getppid() == SUPERVISOR_PID:
        return None
    return SUPERVISOR_PID


def flush_output() -> None:
    """Flush stdout and stderr before ``os._exit``, ignoring a failure: with its output piped to
    a reader that has gone (``| head``), the flush raises, and a child must still exit with its
    own code. (It once raised out of the child's ``finally:`` and the child ran on as a second
    supervisor; and a --burst child that failed so was replaced for ever.)"""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _stop_before_work(_signum: int, _frame: Any) -> None:
    """A child asked to stop before its worker took over the stop signals: it has leased
    nothing yet, so it ends at once, cleanly (with SIG_DFL it would die "killed by SIGTERM",
    and the supervisor would report the stop as a failure)."""
    flush_output()
    os._exit(0)


def ignore_stop_signals() -> None:
    """(A supervised child whose worker has drained) A stop signal arriving now would find
    ``_stop_before_work`` again, restored by the worker: nothing is left to stop, and the
    child's own exit (its code, a scheduler giving up its lease) must not be cut short."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _stop_with(supervisor: int) -> None:
    """SIGTERM (a drain) when the supervisor dies; it has no threads, so "the thread that forked
    us" is the supervisor itself. One that died before the call took effect is caught by the
    parent check: the child exits at once."""
    from .parentdeath import signal_on_parent_death  # here: only a supervised child needs ctypes

    global SUPERVISOR_PID
    SUPERVISOR_PID = supervisor
    signal_on_parent_death(signal.SIGTERM)
    if os.getppid() != supervisor:
        os._exit(1)
