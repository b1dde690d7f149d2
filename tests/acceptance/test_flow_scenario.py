"""The issue's flow scenario with the real prefect==3.9.1 client, on SQLite and Postgres."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import RunningServer, run_client

SCRIPTS = Path(__file__).parent / "scripts"


def _json_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_flow_scenario_runs_and_reads_back(any_server: RunningServer, tmp_path: Path) -> None:
    ran = run_client(any_server, [str(SCRIPTS / "flow_scenario.py")], tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:] + any_server.log()
    outcome = _json_line(ran.stdout)
    assert outcome["demo_result"] == {"direct": 6, "submitted": 7, "retried": "ok", "sub": 10}
    assert outcome["failed_type"] == "FAILED"

    # add, add, flaky, doomed, and the subflow's tracking task child-0
    read = run_client(
        any_server, [str(SCRIPTS / "read_back.py"), outcome["demo_run_id"], "5"], tmp_path
    )
    assert read.returncode == 0, read.stderr[-3000:]
    tree = _json_line(read.stdout)
    assert tree["run"]["state_type"] == "COMPLETED"
    assert tree["run"]["run_count"] == 1
    assert tree["states"] == ["Pending", "Running", "Completed"]

    tasks = {t["task_key"].rsplit("-", 1)[0]: t for t in tree["tasks"] if t["task_key"] != "add"}
    by_kind: dict[str, list[dict]] = {}
    for task in tree["tasks"]:
        by_kind.setdefault(task["task_key"].rsplit("-", 1)[0], []).append(task)
    assert sorted(by_kind) == ["add", "child", "doomed", "flaky"]
    assert [t["state_type"] for t in by_kind["add"]] == ["COMPLETED", "COMPLETED"]
    assert tasks["flaky"]["state_type"] == "COMPLETED"
    assert tasks["flaky"]["run_count"] == 3, "two failed attempts, then success"
    assert tasks["doomed"]["state_type"] == "FAILED"
    assert tasks["child"]["state_type"] == "COMPLETED", "tracking task follows its subflow"
    assert all(t["flow_run_id"] == outcome["demo_run_id"] for t in tree["tasks"])

    assert len(tree["children"]) == 1
    child = tree["children"][0]
    assert child["state_type"] == "COMPLETED"
    assert child["parent_task_run_id"] == tasks["child"]["id"]

    messages = [log["message"] for log in tree["logs"]]
    assert "hello from demo x=5" in messages
    assert "doomed failed as expected" in messages
    assert "child running with n=5" in messages

    failed = run_client(
        any_server, [str(SCRIPTS / "read_back.py"), outcome["failed_run_id"]], tmp_path
    )
    failed_tree = _json_line(failed.stdout)
    assert failed_tree["run"]["state_type"] == "FAILED"
    assert "about to fail" in [log["message"] for log in failed_tree["logs"]]

    _check_cli(any_server, tmp_path, outcome["demo_run_id"])


def _check_cli(server: RunningServer, tmp_path: Path, run_id: str) -> None:
    flows = run_client(server, ["-m", "prefect", "flow", "ls"], tmp_path)
    assert flows.returncode == 0, flows.stderr
    for name in ("demo", "child", "failing"):
        assert name in flows.stdout

    runs = run_client(server, ["-m", "prefect", "flow-run", "ls"], tmp_path)
    assert runs.returncode == 0, runs.stderr
    assert "COMPLETED" in runs.stdout and "FAILED" in runs.stdout

    inspect = run_client(server, ["-m", "prefect", "flow-run", "inspect", run_id], tmp_path)
    assert inspect.returncode == 0, inspect.stderr
    assert run_id in inspect.stdout and "COMPLETED" in inspect.stdout

    logs = run_client(server, ["-m", "prefect", "flow-run", "logs", run_id], tmp_path)
    assert logs.returncode == 0, logs.stderr
    assert "hello from demo x=5" in logs.stdout
