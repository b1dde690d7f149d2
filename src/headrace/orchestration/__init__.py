"""State-transition rules: pure functions from (run, proposed state) to a decision.

The API layer reads the run, calls `decide_flow_run` or `decide_task_run`, and
stores what the returned `Decision` says; nothing here touches the database.
"""

from headrace.orchestration.bookkeeping import initial_state
from headrace.orchestration.decisions import Decision, RunView
from headrace.orchestration.flow_runs import decide_flow_run
from headrace.orchestration.task_runs import decide_task_run

__all__ = ["Decision", "RunView", "decide_flow_run", "decide_task_run", "initial_state"]
