"""The table of ``celery_compare.py``: issue #8's figures, Flower 2.2 vs headrace, with goals."""

from __future__ import annotations

import argparse
from typing import Any

RSS_GOAL_MB = 150.0
RSS_SAME_TOLERANCE = 1.10  # "the same at 200,000 events as at 50,000": within 10 %
RATE_GOAL = 16_000.0
LATENCY_GOAL_MS = 100.0
IDLE_GOAL_PCT = 0.5
# Flower 2.2's documented rate (../shared/bench/results/flower-2.2/README.md), if it did not run.
DOC_FLOWER_RATE = 8000.0


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _ratio(hr: float | None, fl: float | None) -> str:
    if not hr or not fl:
        return "–"
    return f"{hr / fl:.2f}×"


def _yes(ok: bool | None) -> str:
    return "–" if ok is None else ("**yes**" if ok else "**NO**")


def right_share(res: dict[str, Any]) -> tuple[int | None, int | None]:
    """(tasks shown with the producer's final state, tasks sent)."""
    sent = res.get("tasks_sent")
    if sent is None:
        return None, None
    return sent - res.get("tasks_missing", 0) - res.get("tasks_wrong_state", 0), sent


def p99(res: dict[str, Any], window: str) -> float | None:
    """The worse p99 of the two probed endpoints over ``window`` (flood, until_drained)."""
    values = [res.get(f"lat_{which}_{window}", {}).get("p99_ms") for which in ("tasks", "workers")]
    values = [v for v in values if v is not None]
    return max(values) if values else None


def dropped(res: dict[str, Any]) -> int | None:
    """Times Redis disconnected the monitor's subscription during the run.

    headrace's watch stops before the server does, so every subscriber that went
    away was dropped; Flower's runs until Flower exits, so count the
    replacements (a drop, then Flower's reconnect) instead.
    """
    watch = res.get("redis_pubsub") or {}
    if "subscriptions" not in watch:
        return None
    if res.get("server") == "headrace":
        return int(watch["dropped"])
    return max(0, int(watch["subscriptions"]) - 1)


def _load(fl: dict[str, Any], hr: dict[str, Any]) -> str:
    parts = []
    for name, res in (("Flower", fl), ("headrace", hr)):
        if res.get("loadavg_before"):
            b, e = res["loadavg_before"][0], res["loadavg_after"][0]
            parts.append(f"{name} {b:.2f} → {e:.2f}")
    return "1-min load average before → after: " + "; ".join(parts) if parts else ""


def flood_rows(fl: dict, hr: dict, rss_base: float | None) -> list[str]:
    rows = []
    (fr, fs), (hrr, hs) = right_share(fl), right_share(hr)

    def share(r: int | None, s: int | None) -> str:
        return "–" if not s or r is None else f"{r:,} / {s:,} ({100 * r / s:.1f} %)"

    rows.append(
        f"| tasks recorded with the right final state / tasks sent | {share(fr, fs)} | "
        f"{share(hrr, hs)} | | 100 % | {_yes(hs is not None and hrr == hs)} |"
    )

    def counted(res: dict[str, Any]) -> str:
        sent = (res.get("producer") or {}).get("task_events")
        return f"{_num(res.get('flower_task_events'))} / {_num(sent)}"

    rows.append(f"| task events counted / sent | {counted(fl)} | {counted(hr)} | | | |")
    f_rate, h_rate = fl.get("ingest_rate"), hr.get("ingest_rate")
    need = max(RATE_GOAL, 2 * (f_rate or DOC_FLOWER_RATE))
    rows.append(
        f"| sustained processing rate, events/s (first publish → all counted) | {_num(f_rate)} | "
        f"{_num(h_rate)} | {_ratio(h_rate, f_rate)} | ≥ 2× Flower, ≥ 16,000 (here ≥ {need:,.0f}) | "
        f"{_yes(None if h_rate is None else h_rate >= need)} |"
    )
    rows.append(
        f"| drained after the last publish, s | {_num(fl.get('drain_after_producer_s'), 1)} | "
        f"{_num(hr.get('drain_after_producer_s'), 1)} | | | |"
    )
    f_lat, h_lat = p99(fl, "flood"), p99(hr, "flood")
    f_all, h_all = p99(fl, "until_drained"), p99(hr, "until_drained")
    worst = max((v for v in (h_lat, h_all) if v is not None), default=None)
    rows.append(
        f"| read API p99, ms: during the flood / until drained (worse of the 2 probes) | "
        f"{_num(f_lat)} / {_num(f_all)} | {_num(h_lat)} / {_num(h_all)} | {_ratio(h_all, f_all)} | "
        f"< 100 (both windows) | {_yes(None if worst is None else worst < LATENCY_GOAL_MS)} |"
    )
    f_rss, h_rss = fl.get("rss_peak_mb"), hr.get("rss_peak_mb")
    ok = None if h_rss is None else h_rss <= RSS_GOAL_MB
    goal = "≤ 150"
    if rss_base is not None and h_rss is not None and h_rss is not rss_base:
        goal += f", ≤ {rss_base * RSS_SAME_TOLERANCE:.0f} (smallest size's + 10 %)"
        ok = ok and h_rss <= rss_base * RSS_SAME_TOLERANCE
    rows.append(
        f"| peak RSS, MB (start → peak) | {_num(fl.get('rss_start_mb'))} → {_num(f_rss)} | "
        f"{_num(hr.get('rss_start_mb'))} → {_num(h_rss)} | {_ratio(h_rss, f_rss)} | {goal} | {_yes(ok)} |"
    )
    rows.append(
        f"| CPU seconds (% of a core on average) | {_num(fl.get('cpu_s'), 1)} ({_num(fl.get('cpu_pct_avg'))} %) | "
        f"{_num(hr.get('cpu_s'), 1)} ({_num(hr.get('cpu_pct_avg'))} %) | | | |"
    )
    fw, hw = fl.get("redis_pubsub") or {}, hr.get("redis_pubsub") or {}
    gaps = (hr.get("monitor") or {}).get("gaps")
    rows.append(
        f"| Redis dropped the subscription (times) / peak pub/sub buffer, MB | "
        f"{_num(dropped(fl))} / {_num(fw.get('omem_peak_mb'), 1)} | {_num(dropped(hr))} / "
        f"{_num(hw.get('omem_peak_mb'), 1)} | | 0 (limit 32 MB) | {_yes(None if not hw else dropped(hr) == 0)} |"
    )
    rows.append(
        f"| gaps counted by the monitor (`status()['gaps']`, reconnects) | – (its log: "
        f"{len(fl.get('flower_log_errors') or [])} ERROR/Failed lines) | {_num(gaps)} "
        f"({_num((hr.get('monitor') or {}).get('reconnects'))}) | | | |"
    )
    return rows


def table(a: argparse.Namespace, results: dict[str, dict[str, Any]]) -> str:
    """Markdown: one section per flood size, then idle."""
    out = [f"# Celery monitor: headrace vs flower==2.2.0 (Redis {a.broker})", ""]
    sizes = [
        n for n in a.sizes if f"flower-flood-{n}" in results or f"headrace-flood-{n}" in results
    ]
    rss_base = None
    for n in sizes:
        fl, hr = results.get(f"flower-flood-{n}", {}), results.get(f"headrace-flood-{n}", {})
        if rss_base is None:
            rss_base = hr.get("rss_peak_mb")
        out += [
            f"## {n:,} task events at {a.rate:,.0f}/s (`--replay --rate {a.rate:.0f}`; "
            f"Flower `--max-tasks {a.max_tasks}`)",
            "",
            _load(fl, hr),
            "",
            "| figure | Flower 2.2 | headrace | headrace / Flower | goal (headrace) | met |",
            "|---|---|---|---|---|---|",
            *flood_rows(fl, hr, rss_base),
            "",
        ]
    fl, hr = results.get("flower-idle"), results.get("headrace-idle")
    if fl or hr:
        fl, hr = fl or {}, hr or {}
        f_cpu, h_cpu = fl.get("idle_cpu_pct"), hr.get("idle_cpu_pct")
        out += [
            f"## Idle: {a.idle:.0f} s, 50 workers heartbeating every 2 s",
            "",
            _load(fl, hr),
            "",
            "| figure | Flower 2.2 | headrace | headrace / Flower | goal (headrace) | met |",
            "|---|---|---|---|---|---|",
            f"| CPU, % of one core (from 5 s after the start) | {_num(f_cpu, 2)} | {_num(h_cpu, 2)} | "
            f"{_ratio(h_cpu, f_cpu)} | ≤ 0.5 | {_yes(None if h_cpu is None else h_cpu <= IDLE_GOAL_PCT)} |",
            f"| RSS at the end, MB | {_num(fl.get('rss_end_mb'))} | {_num(hr.get('rss_end_mb'))} | | | |",
            "",
        ]
    failed = [name for name, res in results.items() if res.get("returncode")]
    if failed:
        out.append("Failed runs (see their .stderr): " + ", ".join(failed))
    return "\n".join(out)
