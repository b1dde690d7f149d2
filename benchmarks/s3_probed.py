#!/usr/bin/env python3
"""S3 with probes: runs the shared ``s3_scheduler_scale.py`` unchanged, and
alongside it

  * the shared ``probe_latency.py`` (``GET /health`` and ``POST
    /flow_runs/filter`` every 100 ms, as S4 uses it) from a few seconds before
    the scenario until it exits; latency per phase: ``baseline``, ``create``
    (the scenario's "creating" log line to its "created" line),
    ``after_create`` and ``throughout`` (scenario start to exit). Requests
    that failed or timed out count with the time they took (and in ``errors``):
    a server that stops answering must not look fast;
  * a scheduling-lag sampler: every ``--lag-poll`` s, until every deployment
    created so far has a Scheduled run and creation has ended, two counts --
    deployments named ``s3-*`` that have a SCHEDULED-type run, then all
    deployments named ``s3-*``. The k-th deployment's lag is the first sample
    with >= k covered minus the first with >= k created (deployments are
    created one after another, so this holds per deployment to within the
    poll interval).

Other arguments go to the scenario script unchanged; the harness's
``--api-url``, ``--server-pid`` and ``--out`` too. The output is the
scenario's JSON plus ``latency_s``, ``schedule_lag_s`` and ``scenario_rc``;
if the scenario died without output (e.g. the server stopped answering) the
probes' figures are still written.

usage: python s3_probed.py --api-url URL --out s3.json [--probe-csv F]
           [--lag-poll 2] <s3_scheduler_scale.py args>
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from bench_shared import use_shared

SHARED = use_shared()
from benchlib import log, pct  # noqa: E402

PREFIX = "s3-"  # the scenario names its deployments s3-<tag>-<i>; one scenario per server
SCHEDULED = {"state": {"type": {"any_": ["SCHEDULED"]}}}


class Scenario:
    """The shared script as a child process; remembers when its log lines arrived."""

    def __init__(self, cmd: list[str]) -> None:
        self.marks: dict[str, float] = {}
        self.created_line = ""
        self.t_start = time.time()
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            sys.stderr.write(line)
            sys.stderr.flush()
            for key, needle in (("create_start", "] creating "), ("create_end", "] created ")):
                if needle in line and key not in self.marks:
                    self.marks[key] = time.time()
                    if key == "create_end":
                        self.created_line = line

    def wait(self) -> int:
        rc = self.proc.wait()
        self._reader.join(timeout=5)
        self.marks["end"] = time.time()
        return rc


def sample_lag(api: str, scen: Scenario, poll: float, stop: threading.Event) -> dict[str, Any]:
    """Poll created/covered counts until all created ones are covered after creation."""
    samples: list[tuple[float, int, int]] = []
    errors: list[str] = []
    count = {"deployments": {"name": {"like_": PREFIX}}}
    with httpx.Client(timeout=10) as c:
        while not stop.is_set():
            t = time.time()
            try:
                covered = int(
                    c.post(
                        f"{api}/deployments/count", json={**count, "flow_runs": SCHEDULED}
                    ).json()
                )
                created = int(c.post(f"{api}/deployments/count", json=count).json())
            except (httpx.HTTPError, ValueError) as e:
                errors.append(f"{round(t - scen.t_start, 1)}: {type(e).__name__}: {e}"[:200])
            else:
                samples.append((t, created, covered))
                if "create_end" in scen.marks and created and covered >= created:
                    break
            stop.wait(max(0.0, poll - (time.time() - t)))
    return lag_figures(samples, poll, errors)


def lag_figures(
    samples: list[tuple[float, int, int]], poll: float, errors: list[str]
) -> dict[str, Any]:
    first_created: dict[int, float] = {}
    first_covered: dict[int, float] = {}
    top_created = top_covered = 0
    for t, created, covered in samples:
        for k in range(top_created + 1, created + 1):
            first_created[k] = t
        for k in range(top_covered + 1, covered + 1):
            first_covered[k] = t
        top_created, top_covered = max(top_created, created), max(top_covered, covered)
    lags = [first_covered[k] - first_created[k] for k in first_created if k in first_covered]
    uncovered = top_created - top_covered
    return {
        "deployments_seen": top_created,
        "uncovered_at_end": uncovered,
        "max": (round(max(lags), 2) if lags else None) if not uncovered else float("inf"),
        "p50": round(pct(lags, 50), 2) if lags else None,
        "resolution_s": poll,
        "samples": len(samples),
        "series": [
            (round(t - samples[0][0], 2), a, b) for t, a, b in samples
        ],  # t, created, covered
        "errors": errors[:20],
    }


def read_probe(path: Path) -> list[tuple[float, str, float, str]]:
    with open(path) as f:
        return [
            (float(r["t_unix"]), r["endpoint"], float(r["latency_s"]), r["status"])
            for r in csv.DictReader(f)
        ]


def phase_stats(rows: list[tuple[float, str, float, str]], t0: float, t1: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ep in ("health", "flow_runs_filter"):
        # a request belongs to every phase its [start, end] overlaps
        sel = [r for r in rows if r[1] == ep and r[0] < t1 and r[0] + r[2] > t0]
        lat = [r[2] for r in sel]
        out[ep] = {
            "requests": len(sel),
            "errors": sum(1 for r in sel if r[3] != "200"),
            "p50": round(pct(lat, 50), 4) if lat else None,
            "p99": round(pct(lat, 99), 4) if lat else None,
            "max": round(max(lat), 4) if lat else None,
            "ticks_expected_at_100ms": int(max(0.0, t1 - t0) / 0.1),
        }
    return out


def fallback_result(args: list[str], created_line: str, lag: dict[str, Any]) -> dict[str, Any]:
    """What is known when the scenario died without output: its log's "created" line."""
    out: dict[str, Any] = {"scenario": "S3_scheduler_scale", "incomplete": True}
    if "--n" in args:
        out["n_deployments_requested"] = int(args[args.index("--n") + 1])
    m = re.search(r"created (\d+) \(\w+\) in ([\d.]+)s", created_line)
    if m:
        out["n_deployments_created"] = int(m.group(1))
        out["create_wall_s"] = float(m.group(2))
        out["create_rate_per_s"] = round(int(m.group(1)) / max(float(m.group(2)), 1e-9), 2)
    else:
        out["n_deployments_created"] = lag.get("deployments_seen")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--api-url", required=True)
    ap.add_argument("--server-pid", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--probe-csv", help="keep the raw latency samples here")
    ap.add_argument("--lag-poll", type=float, default=2.0)
    ap.add_argument("--baseline", type=float, default=3.0, help="probe this long before starting")
    a, rest = ap.parse_known_args()
    api = a.api_url.rstrip("/")
    tmp = Path(tempfile.mkdtemp(prefix="pfb-s3p-"))
    probe_csv = Path(a.probe_csv) if a.probe_csv else tmp / "probe.csv"
    stop_file = tmp / "stop"
    probe = subprocess.Popen(
        [sys.executable, str(SHARED / "probe_latency.py"), "--api-url", api, "--out", str(probe_csv),
         "--stop-file", str(stop_file), "--duration", "36000"]
    )  # fmt: skip
    t_probe = time.time()
    time.sleep(a.baseline)

    scen_out = tmp / "s3.json"
    scen = Scenario(
        [sys.executable, str(SHARED / "s3_scheduler_scale.py"), *rest, "--api-url", api,
         "--server-pid", a.server_pid, "--out", str(scen_out)]
    )  # fmt: skip
    stop_lag = threading.Event()
    lag: dict[str, Any] = {}
    lag_thread = threading.Thread(
        target=lambda: lag.update(sample_lag(api, scen, a.lag_poll, stop_lag)), daemon=True
    )
    lag_thread.start()
    rc = scen.wait()
    stop_lag.set()
    lag_thread.join(timeout=30)
    stop_file.touch()
    try:
        probe.wait(timeout=60)
    except subprocess.TimeoutExpired:
        probe.kill()
        probe.wait()

    rows = read_probe(probe_csv) if probe_csv.exists() else []
    m = scen.marks
    phases = {"baseline": (t_probe, scen.t_start), "throughout": (scen.t_start, m["end"])}
    if "create_start" in m:
        create_end = m.get("create_end", m["end"])
        phases |= {
            "create": (m["create_start"], create_end),
            "after_create": (create_end, m["end"]),
        }
    try:
        result = json.loads(scen_out.read_text())
    except (OSError, ValueError):
        log(f"s3_scheduler_scale.py left no output (rc {rc}); writing the probes' figures only")
        result = fallback_result(rest, scen.created_line, lag)
    shutil.rmtree(tmp, ignore_errors=True)
    result.update(
        scenario_rc=rc,
        latency_s={name: phase_stats(rows, t0, t1) for name, (t0, t1) in phases.items()},
        phase_seconds={name: round(t1 - t0, 2) for name, (t0, t1) in phases.items()},
        schedule_lag_s=lag,
    )
    Path(a.out).write_text(json.dumps(result, indent=1, default=str))
    log(
        f"health p99 throughout {result['latency_s']['throughout']['health']['p99']}s; "
        f"schedule lag max {lag.get('max')}s over {lag.get('deployments_seen')} deployments"
    )
    sys.exit(rc)


if __name__ == "__main__":
    main()
