"""Command-line options and run plans of the scheduler scenarios for ``compare.py``.

s2 and s3 run the shared scripts (s3 through our ``s3_probed.py`` wrapper);
s2w and s3x are our scripts in this directory. s3x runs against headrace only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIOS = ("s2", "s2w", "s3", "s3x")
HEADRACE_ONLY = ("s3x",)

# full size / --quick (explicit flags still win)
DEFAULTS: dict[str, tuple[float, float]] = {
    "s2_n": (42, 42),
    "s2_warmup": (30, 10),
    "s2_duration": (180, 60),
    "s2w_n": (42, 5),
    "s2w_warmup": (30, 15),
    "s2w_duration": (180, 60),
    "s2w_drain": (120, 30),
    "s3_n": (1000, 100),
    "s3_duration": (180, 60),
    "s3_max_wait": (240, 60),
    "s3x_n": (10_000, 500),
    "s3x_max_wait": (1800, 300),
    "s3x_settle": (120, 20),
    "s3x_duration": (120, 30),
}


def add_args(ap: argparse.ArgumentParser) -> None:
    """The scheduler scenarios' options (defaults are applied by ``finish``)."""
    g = ap.add_argument_group("scheduler scenarios (s2, s2w, s3, s3x)")
    g.add_argument("--s2-n", type=int, help="S2 deployments (default 42)")
    g.add_argument("--s2-warmup", type=float, help="S2 warm-up, s (default 30; quick 10)")
    g.add_argument("--s2-duration", type=float, help="S2 window, s (default 180; quick 60)")
    g.add_argument("--s2w-n", type=int, help="S2w deployments (default 42; quick 5)")
    g.add_argument("--s2w-warmup", type=float, help="S2w warm-up, s (default 30; quick 15)")
    g.add_argument("--s2w-duration", type=float, help="S2w window, s (default 180; quick 60)")
    g.add_argument(
        "--s2w-drain", type=float, help="S2w: max wait for window runs to end (default 120)"
    )
    g.add_argument("--s3-n", type=int, help="S3 deployments (default 1000; quick 100)")
    g.add_argument("--s3-interval", type=float, default=60, help="S3 interval, s (default 60)")
    g.add_argument(
        "--s3-duration", type=float, help="S3 CPU window from creation end (default 180)"
    )
    g.add_argument("--s3-max-wait", type=float, help="S3: give up waiting for coverage (240)")
    g.add_argument(
        "--s3-create-timeout",
        type=float,
        default=300,
        help="S3, reference: stop creating after this, s (default 300; 3.8.8 stalled at "
        "~450 deployments); its creation time is then a lower bound",
    )
    g.add_argument(
        "--s3-headrace-create-timeout",
        type=float,
        default=1800,
        help="S3, headrace: the same bound (default 1800)",
    )
    g.add_argument("--s3x-n", type=int, help="S3x deployments (default 10000; quick 500)")
    g.add_argument("--s3x-interval", type=float, default=3600, help="S3x interval (3600)")
    g.add_argument("--s3x-concurrency", type=int, default=4, help="S3x creations in flight (4)")
    g.add_argument(
        "--s3x-max-wait", type=float, help="S3x: give up waiting for coverage (1800; quick 300)"
    )
    g.add_argument("--s3x-settle", type=float, help="S3x: wait after coverage (120; quick 20)")
    g.add_argument("--s3x-duration", type=float, help="S3x idle window, s (120; quick 30)")


def finish(a: argparse.Namespace) -> None:
    """Fill the unset sizes from DEFAULTS (full or --quick)."""
    for key, (full, quick) in DEFAULTS.items():
        if getattr(a, key) is None:
            setattr(a, key, type(full)(quick if a.quick else full))


def params(a: argparse.Namespace) -> list[str]:
    """One-line descriptions of the sizes of s2, s2w, s3, s3x (in that order)."""
    return [
        f"S2 {a.s2_n} cron deployments, warm-up {a.s2_warmup:g} s + {a.s2_duration:g} s",
        f"S2w {a.s2w_n} cron deployments + 1 process worker, warm-up {a.s2w_warmup:g} s "
        f"+ {a.s2w_duration:g} s",
        f"S3 {a.s3_n} deployments every {a.s3_interval:g} s (active), "
        f"create timeout {a.s3_create_timeout:g} s (reference) / "
        f"{a.s3_headrace_create_timeout:g} s (headrace), window {a.s3_duration:g} s",
        f"S3x {a.s3x_n} deployments every {a.s3x_interval:g} s, settle {a.s3x_settle:g} s "
        f"+ idle {a.s3x_duration:g} s",
    ]


def plan(
    a: argparse.Namespace, scen: str, server: str, out_dir: Path
) -> tuple[str, list[str], float]:
    """(run name, scenario script + args, hard timeout in s excluding start-up)."""
    if scen == "s2":
        args = ["s2_cron_deployments.py", "--n", str(a.s2_n), "--warmup", str(a.s2_warmup)]
        args += ["--duration", str(a.s2_duration)]
        # creation (42 x <= 2 s) + window + 18 state counts that may be slow on the reference
        return f"s2_cron{a.s2_n}_r1", args, 120 + a.s2_warmup + a.s2_duration + 300
    if scen == "s2w":
        args = [str(HERE / "s2w_worker.py"), "--n", str(a.s2w_n), "--warmup", str(a.s2w_warmup)]
        args += ["--duration", str(a.s2w_duration), "--drain", str(a.s2w_drain)]
        budget = 180 + a.s2w_warmup + a.s2w_duration + a.s2w_drain + 120
        return f"s2w_worker{a.s2w_n}_r1", args, budget
    if scen == "s3":
        name = f"s3_sched{a.s3_n}_r1"
        create_timeout = (
            a.s3_create_timeout if server == "reference" else a.s3_headrace_create_timeout
        )
        args = [
            str(HERE / "s3_probed.py"),
            "--probe-csv",
            str(out_dir / f"{name}.latency.csv"),
            "--mode",
            "active",
            "--n",
            str(a.s3_n),
            "--interval",
            str(a.s3_interval),
            "--duration",
            str(a.s3_duration),
            "--max-wait",
            str(a.s3_max_wait),
            "--create-timeout",
            str(create_timeout),
        ]
        # an in-flight creation may retry 5 x 60 s after the deadline; 9 final counts x 60 s
        budget = create_timeout + 320 + max(a.s3_max_wait, a.s3_duration) + 540 + 120
        return name, args, budget
    if scen == "s3x":
        args = [
            str(HERE / "s3x_idle_scale.py"),
            "--n",
            str(a.s3x_n),
            "--interval",
            str(a.s3x_interval),
            "--concurrency",
            str(a.s3x_concurrency),
            "--settle",
            str(a.s3x_settle),
            "--duration",
            str(a.s3x_duration),
            "--max-wait",
            str(a.s3x_max_wait),
            "--create-timeout",
            str(create_timeout := max(300, a.s3x_n / 5)),  # expect >= 5 deployments/s
        ]
        # creation, coverage wait, settle, window, final counts
        budget = create_timeout + a.s3x_max_wait + a.s3x_settle + a.s3x_duration + 300
        return f"s3x_idle{a.s3x_n}_r1", args, budget
    raise ValueError(scen)
