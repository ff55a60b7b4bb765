"""`assistant bench load`: closed-loop clients asking /api/ask at several concurrency levels while
one more client polls /api/health; figures per level (measured in one run, not tests).

Each level runs for a fixed time (and optionally at most a fixed number of requests); a client
starts its next question when the previous answer arrived, until the level's time is up, and
the requests still in flight then finish (each bounded by the request timeout). Only servers on
127.0.0.1 are measured: the one this command starts, or one named with --url.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import resource
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from assistant.settings import Settings

DEFAULT_LEVELS = (10, 30, 50)
WARM_UP_QUESTIONS = 10

DEFAULT_QUESTIONS = "data/load-questions.yaml"  # in the package; ten questions of every style


def load_questions(path: Path | None = None) -> list[dict[str, Any]]:
    """The request bodies the clients send, in turn: the package's ten by default, or a YAML list
    of questions (``question`` or ``q`` as in tests/eval, with optional ``history`` and ``audience``)."""
    import yaml

    try:
        if path is None:
            from importlib import resources

            text = resources.files("assistant").joinpath(DEFAULT_QUESTIONS).read_text(encoding="utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        entries = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise LoadError(f"cannot read the questions from {path}: {exc}") from None
    if not isinstance(entries, list):
        raise LoadError(f"{path}: expected a YAML list of questions")
    bodies = []
    for entry in entries:
        question = entry.get("question", entry.get("q")) if isinstance(entry, dict) else None
        if not isinstance(question, str) or not question.strip():
            raise LoadError(f"{path}: every entry needs a question (`question:` or `q:`), not {entry!r:.80}")
        turns = entry.get("history") or []
        if not isinstance(turns, list) or not all(
            isinstance(t, dict) and isinstance(t.get("role"), str) and isinstance(t.get("content"), str) for t in turns
        ):
            raise LoadError(f"{path}: a history is a list of {{role, content}}, not {turns!r:.80}")
        history = [{"role": t["role"], "content": t["content"]} for t in turns]
        bodies.append({"question": question, "history": history, "audience": entry.get("audience", "patient")})
    if not bodies:
        raise LoadError(f"{path}: no questions")
    return bodies


class LoadError(Exception):
    """The load bench cannot run as asked (bad URL, server not healthy)."""


class QuestionPool:
    """The questions, walked in turn by all clients of all levels (one event loop: no lock), so a
    pool larger than the requests sent asks each question once; counts how many were repeats."""

    def __init__(self, bodies: list[dict[str, Any]]) -> None:
        self.bodies = bodies
        self.sent = 0

    @property
    def repeats(self) -> int:
        """Requests that asked a question already asked: in turn, every one after the first lap."""
        return max(0, self.sent - len(self.bodies))

    def next(self) -> dict[str, Any]:
        body = self.bodies[self.sent % len(self.bodies)]
        self.sent += 1
        return body


@dataclass
class Level:
    clients: int
    latencies_ms: list[float] = field(default_factory=list)  # answers (200) only
    errors: Counter[str] = field(default_factory=Counter)  # by status, or the exception's name
    requests: int = 0
    health_ms: list[float] = field(default_factory=list)
    health_errors: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    rss_peak_mb: dict[int, float] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of them at or below it."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(len(ordered) * q)))
    return ordered[rank - 1]


# --- server processes: found by their listening socket, measured from /proc (or psutil) ------


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def server_pids(port: int) -> list[int]:
    """The processes (of this user) that hold the socket listening on the port, and the worker
    processes they started (which answer, but do not hold the socket)."""
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    pids, parents = [], {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            parents[int(proc.name)] = int(proc_stat(int(proc.name))[PARENT])
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in targets for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
    found = set(pids)
    while True:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        if not children:
            return sorted(found)
        found |= children


def rss_mb(pid: int) -> float:
    try:
        import psutil
    except ImportError:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")
    try:
        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except psutil.Error:
        return float("nan")


STATE, PARENT, USER_TIME, SYSTEM_TIME = 0, 1, 11, 12  # in proc_stat's fields


def proc_stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (which may hold spaces); OSError when gone."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used."""
    try:
        fields = proc_stat(pid)
    except OSError:
        return float("nan")
    return (int(fields[USER_TIME]) + int(fields[SYSTEM_TIME])) / os.sysconf("SC_CLK_TCK")


def check_url(url: str) -> tuple[str, int]:
    """http://127.0.0.1:PORT (nothing else is measured): the base URL and the port."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname != "127.0.0.1" or parts.port is None:
        raise LoadError(f"--url must be http://127.0.0.1:PORT (a server on this machine), not {url!r}")
    return f"http://127.0.0.1:{parts.port}", parts.port


# --- the clients ----------------------------------------------------------------------------


def _has_answer(response: Any) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("answer"), str) and bool(body["answer"])


async def _client(
    http: Any, base: str, pool: QuestionPool, level: Level, deadline: float, budget: list[int], timeout: float
) -> None:
    import httpx

    while time.perf_counter() < deadline and budget[0] > 0:
        budget[0] -= 1
        body = pool.next()
        started = time.perf_counter()
        try:
            response = await http.post(base + "/api/ask", json=body, timeout=timeout)
        except httpx.TimeoutException:
            level.errors["timeout"] += 1
        except httpx.HTTPError as exc:
            level.errors[type(exc).__name__] += 1
        else:
            if response.status_code != 200:
                level.errors[str(response.status_code)] += 1
            elif not _has_answer(response):
                level.errors["200 without an answer"] += 1
            else:
                level.latencies_ms.append((time.perf_counter() - started) * 1000)
        level.requests += 1


def _health_poller(base: str, interval: float, level: Level, pids: list[int], stop: threading.Event) -> None:
    """One more client: GET /api/health every `interval` s; also samples each server process's RSS."""
    import httpx

    next_rss = 0.0
    with httpx.Client(timeout=10) as http:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                response = http.get(base + "/api/health")
            except httpx.TimeoutException:
                level.health_errors["timeout"] += 1
            except httpx.HTTPError as exc:
                level.health_errors[type(exc).__name__] += 1
            else:
                if response.status_code == 200:
                    level.health_ms.append((time.perf_counter() - started) * 1000)
                else:
                    level.health_errors[str(response.status_code)] += 1
            now = time.perf_counter()
            if now >= next_rss:
                next_rss = now + 0.5
                for pid in pids:
                    level.rss_peak_mb[pid] = max(level.rss_peak_mb.get(pid, 0.0), rss_mb(pid))
            stop.wait(max(0.0, interval - (time.perf_counter() - started)))


async def _run_level(
    base: str,
    pool: QuestionPool,
    clients: int,
    seconds: float,
    max_requests: int | None,
    timeout: float,
    health_interval: float,
    pids: list[int],
) -> Level:
    import httpx

    level = Level(clients)
    stop = threading.Event()
    poller = threading.Thread(
        target=_health_poller, args=(base, health_interval, level, pids, stop), name="health-poller", daemon=True
    )
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits) as http:
        poller.start()
        started = time.perf_counter()
        budget = [max_requests if max_requests is not None else 1 << 62]
        await asyncio.gather(
            *(_client(http, base, pool, level, started + seconds, budget, timeout) for _ in range(clients))
        )
        level.elapsed_s = time.perf_counter() - started
        stop.set()
    poller.join(timeout=15)
    return level


def wait_for_workers(base: str, timeout: float = 300.0) -> dict[str, Any]:
    """/api/health once it is ok and says every worker process has loaded the index (a server
    without workers: once it is ok)."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            health = httpx.get(base + "/api/health", timeout=10).json()
        except (httpx.HTTPError, ValueError):
            health = {}
        if health.get("workers_ready", 0) >= health.get("workers", 0) and health.get("status") == "ok":
            return health
        if time.monotonic() > deadline:
            raise LoadError(f"the server's workers were not ready within {timeout:g} s: {health}")
        time.sleep(0.2)


def _warm_up(base: str, pool: QuestionPool, timeout: float) -> None:
    """The pool's first ten questions, one at a time, before anything is measured (they count as asked)."""
    import httpx

    with httpx.Client(timeout=timeout) as http:
        for _ in range(min(WARM_UP_QUESTIONS, len(pool.bodies))):
            response = http.post(base + "/api/ask", json=pool.next())
            if response.status_code != 200:
                raise LoadError(f"warm-up question got {response.status_code}: {response.text[:200]}")


def _level_figures(level: Level, pids: list[int], cpu_used_s: float, client_cpu_s: float) -> dict[str, Any]:
    def ms(value: float) -> float:
        return round(value, 1)

    return {
        "clients": level.clients,
        "requests": level.requests,
        "answers": len(level.latencies_ms),
        "seconds": round(level.elapsed_s, 2),
        "req_per_s": round(level.requests / level.elapsed_s, 2) if level.elapsed_s else 0.0,
        "p50_ms": ms(percentile(level.latencies_ms, 0.50)),
        "p95_ms": ms(percentile(level.latencies_ms, 0.95)),
        "p99_ms": ms(percentile(level.latencies_ms, 0.99)),
        "max_ms": ms(max(level.latencies_ms, default=float("nan"))),
        "errors": sum(level.errors.values()),
        "errors_by_status": dict(sorted(level.errors.items())),
        "health_requests": len(level.health_ms) + sum(level.health_errors.values()),
        "health_p50_ms": ms(percentile(level.health_ms, 0.50)),
        "health_p95_ms": ms(percentile(level.health_ms, 0.95)),
        "health_max_ms": ms(max(level.health_ms, default=float("nan"))),
        "health_errors_by_status": dict(sorted(level.health_errors.items())),
        # CPU the server processes used per request, and how many of the machine's cores that kept busy.
        "server_cpu_ms_per_request": round(cpu_used_s / level.requests * 1000, 1) if level.requests else None,
        "server_cores_busy": round(cpu_used_s / level.elapsed_s, 2) if level.elapsed_s else None,
        "client_cpu_s": round(client_cpu_s, 2),
        "rss_mb": {str(pid): round(rss_mb(pid), 1) for pid in pids},
        "rss_peak_mb": {str(pid): round(max(level.rss_peak_mb.get(pid, 0.0), rss_mb(pid)), 1) for pid in pids},
    }


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_load(
    settings: Settings,
    url: str | None = None,
    levels: tuple[int, ...] = DEFAULT_LEVELS,
    seconds: float = 20.0,
    max_requests: int | None = None,
    timeout: float = 60.0,
    health_interval: float = 0.1,
    questions: Path | None = None,
) -> dict[str, Any]:
    import httpx

    from assistant.bench import _start_server, _stop_server

    if not levels or min(levels) < 1 or seconds <= 0 or timeout <= 0 or health_interval <= 0:
        raise LoadError("levels must be positive client counts; seconds, timeout and health interval positive")
    if max_requests is not None and max_requests < 1:
        raise LoadError("--requests must be at least 1")
    pool = QuestionPool(load_questions(questions))
    result: dict[str, Any] = {"loadavg_before": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    with contextlib.ExitStack() as cleanup:
        proc = None
        if url is None:
            from assistant.api import ensure_index

            ensure_index(settings)
            log = cleanup.enter_context(tempfile.TemporaryFile())  # the server's log, shown if it fails to start
            try:
                proc, base, cold = _start_server(settings, log)
            except RuntimeError:
                log.seek(0)
                raise LoadError("the server did not start:\n" + log.read().decode(errors="replace")[-2000:]) from None
            cleanup.callback(_stop_server, proc)
            port = int(base.rsplit(":", 1)[1])
            result.update(server=f"started by the bench (pid {proc.pid})", url=base, cold_start_s=round(cold, 2))
        else:
            base, port = check_url(url)
            try:
                status = httpx.get(base + "/api/health", timeout=10).status_code
            except httpx.HTTPError as exc:
                raise LoadError(f"{base}/api/health does not answer: {exc}") from None
            if status != 200:
                raise LoadError(f"{base}/api/health says {status}; the server is not ready")
            result.update(server="given with --url", url=base)
        wait_for_workers(base)  # nothing is measured while a worker is still loading
        pids = server_pids(port) or ([proc.pid] if proc is not None else [])
        result.update(
            server_pids=pids,
            questions=f"{len(pool.bodies)} from {questions or 'the package (' + DEFAULT_QUESTIONS + ')'}",
            seconds_per_level=seconds,
            max_requests_per_level=max_requests,
            request_timeout_s=timeout,
            health_interval_s=health_interval,
        )
        _warm_up(base, pool, timeout)
        figures = []
        for clients in levels:
            cpu_before = sum(cpu_seconds(pid) for pid in pids)
            own_before = _own_cpu_s()
            level = asyncio.run(_run_level(base, pool, clients, seconds, max_requests, timeout, health_interval, pids))
            cpu_used = sum(cpu_seconds(pid) for pid in pids) - cpu_before
            figures.append(_level_figures(level, pids, cpu_used, _own_cpu_s() - own_before))
            time.sleep(1.0)  # let the server settle between levels
        result["levels"] = figures
        # A question asked before may find its vectors in the server's cache (ASSISTANT_EMBEDDING_CACHE).
        result["requests_repeating_a_question"] = f"{pool.repeats} of {pool.sent}"
    result["loadavg_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return result


COLUMNS = (
    ("clients", "clients", "{}"),
    ("requests", "requests", "{}"),
    ("req/s", "req_per_s", "{:.2f}"),
    ("p50 ms", "p50_ms", "{:.1f}"),
    ("p95 ms", "p95_ms", "{:.1f}"),
    ("p99 ms", "p99_ms", "{:.1f}"),
    ("max ms", "max_ms", "{:.1f}"),
    ("errors", "errors", "{}"),
    ("health p95 ms", "health_p95_ms", "{:.1f}"),
    ("health max ms", "health_max_ms", "{:.1f}"),
    ("cpu ms/req", "server_cpu_ms_per_request", "{}"),
    ("cores busy", "server_cores_busy", "{}"),
)


def format_load(result: dict[str, Any]) -> str:
    """Header lines as `key value`, then one row per level, then the errors, RSS and health by level."""
    lines = [f"{key:<26} {value}" for key, value in result.items() if key != "levels"]
    levels = result.get("levels", [])
    rows = [[title for title, _, _ in COLUMNS]]
    rows += [[fmt.format(level[key]) for _, key, fmt in COLUMNS] for level in levels]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines.append("")
    lines += ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.append("")
    for level in levels:
        errors = ", ".join(f"{k}: {v}" for k, v in level["errors_by_status"].items()) or "none"
        health_errors = ", ".join(f"{k}: {v}" for k, v in level["health_errors_by_status"].items()) or "none"
        rss = ", ".join(f"pid {pid} {mb} MB (peak {level['rss_peak_mb'][pid]})" for pid, mb in level["rss_mb"].items())
        lines.append(
            f"{level['clients']} clients: errors {errors}; health {level['health_requests']} polls,"
            f" p50 {level['health_p50_ms']} ms, errors {health_errors}; rss {rss};"
            f" client cpu {level['client_cpu_s']} s"
        )
    return "\n".join(lines)
