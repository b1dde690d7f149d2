"""flow.serve() with an interval schedule, as a user would run it."""

from prefect import flow, get_run_logger


@flow
def ticker(msg: str = "hi") -> str:
    get_run_logger().info("tick %s", msg)
    return msg


if __name__ == "__main__":
    ticker.serve(name="tick-dep", interval=3, parameters={"msg": "served"})
