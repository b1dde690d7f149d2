"""Metrics, goals and the comparison table for ``compare.py``.

Each metric reads one figure from a scenario's JSON output (written by the
shared scenario scripts or ours) or from the harness's ``<name>.server.json``.
Goals come from the performance issues; the ones stated relative to the
reference use this run's reference figure, or an earlier run's
(``--reference-results``), or a documented figure (marked "doc", with its
source under the table). S1/S4/S5 are declared here, the scheduler scenarios
S2/S2w/S3/S3x in ``sched_metrics.py``, the background-task and concurrency
scenarios T1-T4 in ``bg_metrics.py``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import bg_metrics
import sched_metrics
from goals import AtLeast, Doc, Goal, Metric, get, ms

# Documented prefect 3.9.1 figures, used only when the reference was not run and
# no earlier run is given. Keys of S2/S3 come from sched_metrics.
_README_391 = "shared/bench/results/prefect-3.9.1/README.md"
DOC_REFERENCE: dict[str, Doc] = {
    "s1.cpu_pct": Doc(2.24, f"{_README_391}, S1 idle 120 s (1.4-2.2 %)"),
    "s1.rss_peak": Doc(225.0, f"{_README_391}, S1 idle (221-225 MB)"),
    "s5.cpu_ms_per_task": Doc(37.0, f"{_README_391}, S5 (7.4 s per 200-task flow)"),
    "s5.short_runs_per_s": Doc(1.1, f"{_README_391}, S5 20 concurrent short flows"),
    "s5.settle_max": Doc(5.2, f"{_README_391}, S5 task runs settled after the flow"),
    **sched_metrics.DOC_REFERENCE,
}


def _lost(d: dict[str, Any], _m: dict[str, Any]) -> int | None:
    sent, kept = d.get("events_sent"), d.get("persisted_final")
    if sent is None or kept is None or kept < 0:
        return None
    return sent - kept


def _ok_runs(d: dict[str, Any]) -> list[dict[str, Any]]:
    """S5 Part A runs whose flow returned (errored flows measure nothing useful)."""
    return [r for r in d.get("per_run") or [] if r.get("flow_run_id") and not r.get("error")]


def _cpu_ms_per_task(d: dict[str, Any], m: dict[str, Any]) -> float | None:
    cpu, tasks = _cpu_per_flow(d, m), d.get("tasks_per_flow")
    if cpu is None or not tasks:
        return None
    return round(cpu / tasks * 1000, 2)


def _cpu_per_flow(d: dict[str, Any], _m: dict[str, Any]) -> float | None:
    cpus = [
        r["server_cpu_incl_settle_s"]
        for r in _ok_runs(d)
        if r.get("server_cpu_incl_settle_s") is not None
    ]
    return statistics.median(cpus) if cpus else None


def _settle_max(d: dict[str, Any], _m: dict[str, Any]) -> float | None:
    runs = _ok_runs(d)
    if not runs:
        return None
    if any(r.get("settle_s") is None for r in runs):
        return float("inf")  # some run never settled within the script's timeout
    return max(r["settle_s"] for r in runs)


def scenario_errors(scenario: str, data: dict[str, Any]) -> list[str]:
    """Failures inside a scenario that still exited 0 (e.g. flows that raised)."""
    if not data:
        return ["no scenario output"]
    if scenario in sched_metrics.SCENARIOS:
        return sched_metrics.scenario_errors(scenario, data)
    if scenario in bg_metrics.SCENARIOS:
        return bg_metrics.scenario_errors(scenario, data)
    errs: list[str] = []
    if scenario == "s1" and data.get("health_ok_at_end") is False:
        errs.append("/health failed at the end of the window")
    if scenario == "s4" and data.get("send_errors"):
        errs.append(f"sender errors: {data['send_errors'][:2]}")
    if scenario == "s5":
        if data.get("A_errors"):
            errs.append(f"{len(data['A_errors'])} big flow(s) failed: {data['A_errors'][0]}")
        if data.get("B_failed_runs"):
            errs.append(f"{data['B_failed_runs']} short flow run(s) failed")
    return errs


METRICS = [
    Metric("s1", "s1.startup", "start-up to healthy", "s", lambda d, m: m.get("startup_s")),
    Metric("s1", "s1.cpu_s", "idle CPU over window", "CPU-s", lambda d, m: d.get("cpu_s")),
    Metric("s1", "s1.window", "idle window length", "s", lambda d, m: d.get("duration_s")),
    Metric(
        "s1",
        "s1.cpu_pct",
        "idle CPU",
        "% of 1 core",
        lambda d, m: d.get("cpu_pct_of_one_core"),
        Goal("<= 0.1 %", "<=", 0.1),
    ),
    Metric(
        "s1",
        "s1.rss_peak",
        "idle RSS peak",
        "MiB",
        lambda d, m: d.get("rss_mb_peak"),
        Goal("<= 80 MB", "<=", 80),
    ),
    Metric(
        "s1", "s1.disk_write", "disk writes in window", "MiB", lambda d, m: d.get("disk_write_mb")
    ),
    Metric("s4", "s4.sent", "events sent", "events", lambda d, m: d.get("events_sent")),
    Metric(
        "s4",
        "s4.send_errors",
        "sender errors",
        "count",
        lambda d, m: len(d["send_errors"]) if "send_errors" in d else None,
    ),
    Metric(
        "s4",
        "s4.send_rate",
        "send rate (accepted)",
        "events/s",
        lambda d, m: d.get("send_rate_per_s"),
    ),
    Metric(
        "s4",
        "s4.persisted",
        "events persisted (queryable)",
        "events",
        lambda d, m: d.get("persisted_final"),
    ),
    Metric("s4", "s4.lost", "events lost (sent - persisted)", "events", _lost, Goal("0", "==", 0)),
    Metric(
        "s4",
        "s4.persist_rate",
        "persist rate (first send -> all queryable)",
        "events/s",
        lambda d, m: d.get("persist_rate_per_s"),
        Goal(">= 10,000/s", ">=", 10_000),
    ),
    Metric(
        "s4",
        "s4.all_queryable",
        "all queryable after first send",
        "s",
        lambda d, m: d.get("time_all_queryable_since_first_send_s"),
    ),
    Metric(
        "s4",
        "s4.cpu",
        "server CPU flood+drain",
        "CPU-s",
        lambda d, m: d.get("cpu_s_flood_and_drain"),
    ),
    Metric(
        "s4",
        "s4.rss_peak",
        "RSS peak",
        "MiB",
        lambda d, m: d.get("rss_mb_peak"),
        Goal("<= 150 MB", "<=", 150),
    ),
    Metric(
        "s4",
        "s4.health_p50_base",
        "/health p50 baseline",
        "ms",
        lambda d, m: ms(get(d, "latency_s.baseline.health.p50")),
    ),
    Metric(
        "s4",
        "s4.health_p99_flood",
        "/health p99 during flood",
        "ms",
        lambda d, m: ms(get(d, "latency_s.flood.health.p99")),
        Goal("< 50 ms", "<", 50),
    ),
    Metric(
        "s4",
        "s4.health_max_flood",
        "/health max during flood",
        "ms",
        lambda d, m: ms(get(d, "latency_s.flood.health.max")),
    ),
    Metric(
        "s4",
        "s4.health_p99_drain",
        "/health p99 during drain",
        "ms",
        lambda d, m: ms(get(d, "latency_s.drain.health.p99")),
    ),
    Metric(
        "s4",
        "s4.frf_p99_flood",
        "/flow_runs/filter p99 during flood",
        "ms",
        lambda d, m: ms(get(d, "latency_s.flood.flow_runs_filter.p99")),
    ),
    Metric(
        "s4",
        "s4.queue_full",
        "log lines 'Subscription queue is full'",
        "lines",
        lambda d, m: get(m, "log_counts.Subscription queue is full"),
    ),
    Metric("s5", "s5.wall", "200-task flow wall, median", "s", lambda d, m: get(d, "A_wall_s.p50")),
    Metric(
        "s5",
        "s5.cpu_per_flow",
        "server CPU per big flow incl. settle, median",
        "CPU-s",
        _cpu_per_flow,
    ),
    Metric(
        "s5",
        "s5.cpu_ms_per_task",
        "server CPU per task run",
        "ms",
        _cpu_ms_per_task,
        Goal("<= 1/5 of reference", "<=", 0.2, relative=True),
    ),
    Metric(
        "s5",
        "s5.settle_p50",
        "task runs COMPLETED after flow returns, median",
        "s",
        lambda d, m: get(d, "A_settle_s.p50"),
    ),
    Metric(
        "s5",
        "s5.settle_max",
        "task runs COMPLETED after flow returns, worst",
        "s",
        _settle_max,
        Goal("<= 1 s", "<=", 1.0),
    ),
    Metric(
        "s5",
        "s5.a_errors",
        "big flow errors",
        "runs",
        lambda d, m: len(d["A_errors"]) if "A_errors" in d else None,
    ),
    Metric(
        "s5",
        "s5.short_runs_per_s",
        "concurrent short flows: runs/s, median round",
        "runs/s",
        lambda d, m: get(d, "B_flow_runs_per_s.p50"),
        Goal(">= 3x reference", ">=", 3.0, relative=True),
    ),
    Metric(
        "s5",
        "s5.b_cpu",
        "concurrent short flows: server CPU per round",
        "CPU-s",
        lambda d, m: get(d, "B_server_cpu_per_round_s.p50"),
    ),
    Metric(
        "s5",
        "s5.b_failed",
        "concurrent short flows: failed runs",
        "runs",
        lambda d, m: d.get("B_failed_runs"),
    ),
    Metric("s5", "s5.rss_peak", "RSS peak", "MiB", lambda d, m: d.get("rss_mb_peak")),
    *sched_metrics.METRICS,
    *bg_metrics.METRICS,
]


def load_run(out_dir: Path, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (scenario JSON, harness meta JSON) of one run; empty dicts when missing."""

    def read(p: Path) -> dict[str, Any]:
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):
            return {}

    return read(out_dir / f"{name}.json"), read(out_dir / f"{name}.server.json")


def extract(scenario: str, data: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """All metric values of one scenario run, keyed by metric key."""
    out: dict[str, Any] = {}
    for m in METRICS:
        if m.scenario != scenario:
            continue
        try:
            out[m.key] = m.extract(data, meta) if (data or meta) else None
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            out[m.key] = None
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, AtLeast):
        return ">= " + _fmt(float(v))
    if isinstance(v, float):
        if v == float("inf"):
            return "never"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _ratio(h: Any, r: Any) -> str:
    if not isinstance(h, (int, float)) or not isinstance(r, (int, float)):
        return "-"
    if r == 0 or h == float("inf") or r == float("inf"):
        return "-"
    return ("<= " if isinstance(r, AtLeast) else "") + f"{h / r:.3g}"


def table(
    scenarios: list[str],
    headrace: dict[str, Any],
    reference: dict[str, Any],
    ref_source: dict[str, str],
) -> tuple[str, list[dict[str, Any]]]:
    """Markdown table and its rows as dicts.

    Args:
        scenarios: which scenarios to show, in order.
        headrace: metric key -> headrace value (missing when not run).
        reference: metric key -> reference value.
        ref_source: metric key -> "" (this run), "doc" or a path, for figures not from this run.
    """
    lines = [
        "| scenario | metric | unit | headrace | reference | ratio h/r | goal (headrace) | met |",
        "|---|---|---|---:|---:|---:|---|:---:|",
    ]
    rows = []
    for m in sorted(
        (m for m in METRICS if m.scenario in scenarios), key=lambda m: scenarios.index(m.scenario)
    ):
        h, r = headrace.get(m.key), reference.get(m.key)
        src = ref_source.get(m.key, "")
        met = m.goal.check(h, r) if m.goal else None
        mark = (
            ""
            if m.goal is None or m.key not in headrace
            else {True: "yes", False: "NO", None: "?"}[met]
        )
        r_txt = _fmt(r) + ({"": "", "doc": " (doc)"}.get(src, " *") if r is not None else "")
        lines.append(
            f"| {m.scenario} | {m.label} | {m.unit} | {_fmt(h)} | {r_txt} | {_ratio(h, r)} "
            f"| {m.goal.text if m.goal else ''} | {mark} |"
        )
        rows.append(
            {
                "scenario": m.scenario,
                "key": m.key,
                "metric": m.label,
                "unit": m.unit,
                "headrace": h,
                "reference": r,
                "reference_source": src or "this run",
                "reference_is_lower_bound": isinstance(r, AtLeast),
                "goal": m.goal.text if m.goal else None,
                "met": met if m.goal else None,
            }
        )
    earlier = sorted({s for s in ref_source.values() if s not in ("", "doc")})
    if earlier:
        lines.append(f"\n\\* reference figure from an earlier run: {', '.join(earlier)}")
    docs = [k for k in reference if ref_source.get(k) == "doc" and k in DOC_REFERENCE]
    if docs:
        lines.append("\n(doc) documented reference figures:")
        lines += [f"- `{k}` {_fmt(reference[k])}: {DOC_REFERENCE[k].source}" for k in docs]
    if any(isinstance(r, AtLeast) for r in reference.values()):
        lines.append(
            "\n`>= x`: a lower bound (the reference stopped before finishing); a relative goal "
            "that the headrace figure misses against it shows `?`"
        )
    return "\n".join(lines), rows
