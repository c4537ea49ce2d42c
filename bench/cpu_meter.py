"""Where a benchmark's CPU time goes: the database, the server, the clients, the rest, idle.

A thread samples ``/proc`` (Linux) a few times a second; a phase's share is the difference
between the samples at its start and end, so a phase measured by its clients' own clocks
(``time.monotonic`` is one clock for every process) is matched to what the machine did
meanwhile. Where ``/proc`` is missing the meter stays empty and reports nothing.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from pathlib import Path

GROUPS = ("database", "server", "clients", "other", "idle")
_PROC = Path("/proc")


def _stat(pid: str) -> tuple[str, int, int] | None:
    """Return (command name, parent pid, ticks) of ``pid``, if it still runs.

    The ticks are its user and system time and that of its children it has reaped: a
    connection's backend that ended mid-phase is counted on the postmaster, a finished
    worker on its parent.
    """
    try:
        text = (_PROC / pid / "stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return name, int(fields[1]), sum(int(v) for v in fields[11:15])


def _machine() -> tuple[int, int]:
    """Return the machine's (busy, idle) ticks since boot, over every core."""
    with open(_PROC / "stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, idle


class CpuMeter:
    """Sample CPU time per group of processes: PostgreSQL, one server tree, this bench's tree.

    ``server_pid`` is the pid of the server's main process (its forked workers count with
    it); ``database`` is every process named ``postgres``; ``clients`` is this process and
    its descendants; ``other`` is the rest of the busy time (interrupts included).
    """

    def __init__(self, server_pid: int, interval: float = 0.1) -> None:
        self.server_pid = server_pid
        self.interval = interval
        self.tick = 1 / os.sysconf("SC_CLK_TCK")
        self.times: list[float] = []
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-meter", daemon=True)
        self.available = (_PROC / "stat").exists()

    def __enter__(self) -> CpuMeter:
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def _sample(self) -> None:
        procs = {}
        for entry in os.listdir(_PROC):
            if entry.isdigit() and (st := _stat(entry)) is not None:
                procs[int(entry)] = st
        me = os.getpid()
        totals = dict.fromkeys(GROUPS, 0.0)

        def within(pid: int, root: int) -> bool:
            while pid > 1:
                if pid == root:
                    return True
                pid = procs[pid][1] if pid in procs else 0
            return False

        for pid, (name, _, ticks) in procs.items():
            if name == "postgres":
                totals["database"] += ticks
            elif within(pid, self.server_pid):
                totals["server"] += ticks
            elif within(pid, me):
                totals["clients"] += ticks
        busy, idle = _machine()
        totals["other"] = busy - totals["database"] - totals["server"] - totals["clients"]
        totals["idle"] = idle
        self.times.append(time.monotonic())
        self.samples.append({k: v * self.tick for k, v in totals.items()})

    def between(self, start: float, end: float) -> dict[str, float] | None:
        """Return the CPU seconds per group between the first sample after ``start`` and the
        last before ``end``, and that window's length (None if it holds under two samples).

        Inside the phase, not around it: what the processes did before (the clients build
        their requests before they start together) is not counted.
        """
        first = bisect.bisect_left(self.times, start)
        last = bisect.bisect_right(self.times, end) - 1
        if last <= first:
            return None
        a, b = self.samples[first], self.samples[last]
        return {k: b[k] - a[k] for k in GROUPS} | {"seconds": self.times[last] - self.times[first]}
