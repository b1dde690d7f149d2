"""flow.serve() with an interval schedule, as a user would run it."""

from prefect import flow, get_run_logger


@flow
def ticker(msg: str = "hi") -> str:
    get_run_logger().info("tick %s", msg)
    return msg


if __name__ == "__main__":
    # Every 6 s: often enough for the test, not so often that a loaded machine
    # accumulates overlapping run processes.
    ticker.serve(name="tick-dep", interval=6, parameters={"msg": "served"})
