"""The current or last run of an output, in one line, from `_birdgen/progress.json` and the lease.

    running, 41% 12,345/30,000, 71 clips/s, ETA 3 m 40 s, heartbeat 4 s ago
    interrupted at 2026-12-01 20:05:11 UTC, 64 committed; run the same command to resume
    holder lost: no heartbeat for 7 min; the next run takes over

A run is "running" only while its heartbeat (the driver rewrites progress.json every few seconds)
is younger than its lease's TTL; an older one is a driver that died without a word (SIGKILL, a
lost node), whose lease the next run takes over by itself.
"""

from __future__ import annotations

import time

HEARTBEAT_LATE_S = 60.0  # progress.json is rewritten every few seconds: a minute late is already odd


def productive_run(summary: dict | None) -> dict:
    """The last run that generated clips, as summary.json keeps it ({} when none did)."""
    if not summary:
        return {}
    if summary.get("generated_this_run"):
        return summary
    return summary.get("last_productive_run") or summary


def run_line(
    progress: dict | None, lease: dict | None, now: float | None = None, counted: tuple[int, int] | None = None
) -> str | None:
    """One line about the current or last run, or None when no run ever wrote progress.json.

    `counted`: (done, planned) as `status` counted them from the output itself, the one source of
    truth; progress.json's own counts, written every few seconds, lag behind it mid-run.
    """
    if not progress:
        return None
    now = time.time() if now is None else now
    state = progress.get("state")
    planned, done = int(progress.get("planned") or 0), int(progress.get("done") or 0)
    if counted is not None:
        done, planned = counted
    committed = done - int(progress.get("already_done") or 0)
    beat_age = now - float(progress.get("heartbeat") or progress.get("started_at") or now)
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(progress.get("heartbeat") or now)))
    if state == "running":
        ttl = float((lease or {}).get("ttl_s") or progress.get("lease_ttl_s") or 300.0)
        holds = lease is not None and lease.get("token") == progress.get("run_id")
        if beat_age > ttl or not holds:
            return f"holder lost: no heartbeat for {_duration(beat_age)}; the next run takes over"
        pct = 100 * done / planned if planned else 100.0
        rate = progress.get("clips_per_second")
        parts = [f"running, {pct:.0f}% {done:,}/{planned:,}"]
        in_flight = min(int(progress.get("in_flight") or 0), planned - done)  # never more than what is left
        if in_flight > 0:
            parts.append(f"{in_flight:,} in flight")
        parts.append(f"{rate:g} clips/s" if rate else "- clips/s")
        if progress.get("eta_s") is not None:
            parts.append(f"ETA {_duration(float(progress['eta_s']))}")
        parts.append(f"heartbeat {_duration(beat_age)} ago" + (" (late)" if beat_age > HEARTBEAT_LATE_S else ""))
        return ", ".join(parts)
    if state == "finished":
        return f"finished at {when}: {done:,}/{planned:,} clips, {committed:,} new"
    if state in ("interrupted", "stopped", "failed"):
        why = f" ({progress['error']})" if progress.get("error") and state != "interrupted" else ""
        return f"{state} at {when}{why}, {committed:,} committed; run the same command to resume"
    return f"{state} at {when}"


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min" if not seconds or minutes >= 5 else f"{minutes} m {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
