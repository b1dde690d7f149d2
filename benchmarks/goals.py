"""The vocabulary of the comparison table: metrics, goals, documented figures.

``report.py`` (S1/S4/S5) and ``sched_metrics.py`` (S2/S2w/S3/S3x) declare their
metrics with these types; ``report.table`` renders them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Extract = Callable[[dict[str, Any], dict[str, Any]], Any]


class AtLeast(float):
    """A lower bound: the real figure is this or more (e.g. a creation that was
    stopped by its deadline before it finished). Rendered as ">= x"."""


@dataclass(frozen=True)
class Doc:
    """A documented reference figure and where it comes from."""

    value: float
    source: str


def get(d: Any, path: str) -> Any:
    """Return ``d[a][b]...`` for ``path`` "a.b...", or None when any step is missing."""
    for key in path.split("."):
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def ms(v: Any) -> float | None:
    """Seconds -> milliseconds, rounded; None stays None."""
    return None if v is None else round(v * 1000, 1)


@dataclass(frozen=True)
class Goal:
    """A pass/fail check on the headrace figure.

    Args:
        text: how the goal reads in the table.
        op: "<=", "<", ">=" or "==".
        value: absolute bound, or the multiplier of the reference when ``relative``.
        relative: compare against ``value`` x the reference figure.
    """

    text: str
    op: str
    value: float
    relative: bool = False

    def check(self, headrace: Any, reference: Any) -> bool | None:
        if not isinstance(headrace, (int, float)):
            return None
        bound = self.value
        if self.relative:
            if not isinstance(reference, (int, float)):
                return None
            bound = self.value * reference
        met = {
            "<=": headrace <= bound,
            "<": headrace < bound,
            ">=": headrace >= bound,
            "==": headrace == bound,
        }[self.op]
        if self.op in ("<=", "<"):
            if met and isinstance(headrace, AtLeast):
                return None  # headrace's real figure is larger: a pass here proves nothing
            if not met and self.relative and isinstance(reference, AtLeast):
                return None  # the reference's real figure is larger: a miss proves nothing
        return met


@dataclass(frozen=True)
class Metric:
    scenario: str  # s1 / s2 / s2w / s3 / s3x / s4 / s5
    key: str
    label: str
    unit: str
    extract: Extract
    goal: Goal | None = None
