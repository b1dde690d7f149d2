"""The issue's flow scenario, run by the real prefect==3.9.1 client against headrace.

Prints one JSON line with the ids the test needs to read back.
"""

import json
import sys

from prefect import flow, get_run_logger, task

attempts = {"flaky": 0}


@task
def add(x: int, y: int) -> int:
    return x + y


@task(retries=2, retry_delay_seconds=0)
def flaky() -> str:
    attempts["flaky"] += 1
    if attempts["flaky"] < 3:
        raise RuntimeError(f"flaky attempt {attempts['flaky']}")
    return "ok"


@task
def doomed() -> None:
    raise ValueError("doomed for good")


@flow
def child(n: int) -> int:
    get_run_logger().info("child running with n=%s", n)
    return add(n, n)


@flow
def demo(x: int) -> dict:
    logger = get_run_logger()
    logger.info("hello from demo x=%s", x)
    direct = add(x, 1)
    submitted = add.submit(x, 2).result()
    retried = flaky()
    try:
        doomed()
    except ValueError:
        logger.warning("doomed failed as expected")
    sub = child(x)
    return {"direct": direct, "submitted": submitted, "retried": retried, "sub": sub}


@flow
def failing() -> None:
    get_run_logger().info("about to fail")
    raise ValueError("flow failed on purpose")


if __name__ == "__main__":
    result = demo(5, return_state=True)
    failed = failing(return_state=True)
    print(
        json.dumps(
            {
                "demo_run_id": str(result.state_details.flow_run_id),
                "demo_result": result.result(),
                "failed_run_id": str(failed.state_details.flow_run_id),
                "failed_type": failed.type.value,
            }
        )
    )
    sys.stdout.flush()
