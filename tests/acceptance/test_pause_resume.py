"""Pause for input and resume with the real client (P1.6)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from tests.conftest import RunningServer, client_python, run_client

SCRIPTS = Path(__file__).parent / "scripts"


def test_pause_for_input_then_resume(sqlite_server: RunningServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HEADRACE_"))}
    home = tmp_path / "prefect-home"
    home.mkdir()
    env.update(PREFECT_API_URL=sqlite_server.api_url, PREFECT_HOME=str(home))
    flow = subprocess.Popen(
        [client_python(), str(SCRIPTS / "pause_resume.py"), "flow"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert flow.stdout is not None
    run_id = None
    deadline = time.monotonic() + 60
    while run_id is None and time.monotonic() < deadline:
        line = flow.stdout.readline()
        if line.startswith("{") and "run_id" in line:
            run_id = json.loads(line)["run_id"]
    assert run_id, flow.stderr.read() if flow.poll() is not None else "no run id"

    resumed = run_client(
        sqlite_server, [str(SCRIPTS / "pause_resume.py"), "resume", run_id], tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "amount" in json.loads(resumed.stdout.strip().splitlines()[-1])["refused"]

    out, err = flow.communicate(timeout=90)
    assert flow.returncode == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1])["result"] == {"approver": "ada", "amount": 3}
