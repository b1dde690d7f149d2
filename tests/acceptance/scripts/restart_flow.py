"""A small flow (three tasks, one log line) for the restart test.

Prints one JSON line: the flow run id and the result.
"""

import json
import sys

from prefect import flow, get_run_logger, task


@task
def double(x: int) -> int:
    return 2 * x


@task
def increment(x: int) -> int:
    return x + 1


@task
def add(x: int, y: int) -> int:
    return x + y


@flow(name="restart-flow")
def restart_flow(x: int) -> int:
    get_run_logger().info("restart flow says hello x=%s", x)
    doubled = double(x)
    bumped = increment(doubled)
    return add(doubled, bumped)


if __name__ == "__main__":
    state = restart_flow(3, return_state=True)
    print(
        json.dumps(
            {
                "flow_run_id": str(state.state_details.flow_run_id),
                "state_type": state.type.value,
                "result": state.result(),
            }
        )
    )
    sys.stdout.flush()
