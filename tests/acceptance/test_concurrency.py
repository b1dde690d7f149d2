"""Global concurrency limits, tag limits and rate limits with the real client (issue #6).

Holders record when they enter and leave their slot; the checks are on those
records, on what the server reports, and on what the client saw.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import RunningServer, client_python, run_client

SCRIPTS = Path(__file__).parent / "scripts"
SCRIPT = str(SCRIPTS / "concurrency_client.py")


def client_env(server: RunningServer, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "prefect-home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HEADRACE_"))}
    env.update(PREFECT_API_URL=server.api_url, PREFECT_HOME=str(home), PREFECT_LOGGING_LEVEL="INFO")
    return env


def spawn(server: RunningServer, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [client_python(), SCRIPT, *args],
        env=client_env(server, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )


def finish(process: subprocess.Popen[str], timeout: float = 120) -> dict:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def api(server: RunningServer, method: str, path: str, **kw: object) -> httpx.Response:
    return httpx.request(method, f"{server.api_url}{path}", timeout=30, **kw)  # type: ignore[arg-type]


def most_inside(path: Path) -> tuple[int, int, int]:
    """(most holders inside at once, enters, exits) from an enter/exit record file."""
    events = []
    for line in path.read_text().splitlines():
        what, _who, moment = line.split()
        # At equal times count the exit first: it was written before the next enter.
        events.append((float(moment), 0 if what == "exit" else 1))
    inside = most = 0
    for _moment, kind in sorted(events):
        inside += 1 if kind else -1
        most = max(most, inside)
    enters = sum(1 for _m, k in events if k)
    return most, enters, len(events) - enters


def active_slots(server: RunningServer, name: str) -> int:
    found = api(server, "GET", f"/v2/concurrency_limits/{name}")
    assert found.status_code == 200, found.text
    return int(found.json()["active_slots"])


def test_six_holders_on_a_limit_of_two(any_server: RunningServer, tmp_path: Path) -> None:
    made = api(any_server, "POST", "/v2/concurrency_limits/", json={"name": "lim", "limit": 2})
    assert made.status_code == 201, made.text
    record = tmp_path / "inside.txt"
    processes = [
        spawn(any_server, tmp_path, "holders", "lim", str(record), "3", "1.0", flavour)
        for flavour in ("sync", "async")
    ]
    for process in processes:
        assert finish(process) == {"done": 3}

    most, enters, exits = most_inside(record)
    assert (enters, exits) == (6, 6)
    assert most == 2  # the limit was used, and never exceeded
    assert active_slots(any_server, "lim") == 0


def test_a_killed_holder_gets_its_slot_back_after_its_lease(
    any_server: RunningServer, tmp_path: Path
) -> None:
    api(any_server, "POST", "/v2/concurrency_limits/", json={"name": "k", "limit": 2})
    holder = spawn(any_server, tmp_path, "hold-forever", "k", "3")
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "HOLDING", (
        holder.stderr.read() if holder.stderr else ""
    )
    assert active_slots(any_server, "k") == 1
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    killed = time.monotonic()

    # A request for both slots is held by the server and let in when the lease lapses.
    answer: dict[str, object] = {}

    def ask() -> None:
        body = {"names": ["k"], "slots": 2, "mode": "concurrency", "lease_duration": 60}
        while True:
            got = api(any_server, "POST", "/v2/concurrency_limits/increment-with-lease", json=body)
            if got.status_code != 423:
                answer.update(status=got.status_code, at=time.monotonic(), body=got.json())
                return
            time.sleep(float(got.headers["Retry-After"]))

    asker = threading.Thread(target=ask)
    asker.start()
    assert active_slots(any_server, "k") == 1  # the dead holder's lease is still live
    asker.join(30)
    assert answer["status"] == 200
    waited = float(answer["at"]) - killed  # type: ignore[arg-type]
    # The lease (3 s, renewed every 2.25 s) lapsed between 0.75 s and 3 s after the kill.
    assert 0.5 <= waited <= 4.0, waited
    assert active_slots(any_server, "k") == 2
    lease_id = answer["body"]["lease_id"]  # type: ignore[index]
    api(
        any_server,
        "POST",
        "/v2/concurrency_limits/decrement-with-lease",
        json={"lease_id": lease_id},
    )
    assert active_slots(any_server, "k") == 0
    time.sleep(0.5)
    assert "expired at" in any_server.log() and "without renewal or release" in any_server.log()

    entered = finish(spawn(any_server, tmp_path, "wait-enter", "k", "2", "20"))
    assert entered["entered"] - entered["started"] < 5


def test_rate_limit_lets_calls_through_at_the_decay_rate(
    any_server: RunningServer, tmp_path: Path
) -> None:
    body = {"name": "rl", "limit": 2, "slot_decay_per_second": 2.0}
    assert api(any_server, "POST", "/v2/concurrency_limits/", json=body).status_code == 201
    moments = finish(spawn(any_server, tmp_path, "rate", "rl", "6"))["moments"]

    # Limit 2 decaying at 2/s: at most 2 + 2t calls get through in any t seconds
    # (0.15 s of slack for the time between the grant and the client noticing it).
    for i, first in enumerate(moments):
        for j in range(i + 1, len(moments)):
            calls, span = j - i + 1, moments[j] - first
            assert calls <= 2 + 2 * (span + 0.15), (i, j, moments)
    # ... and they do get through as the slots decay, not much later.
    assert 1.5 <= moments[-1] - moments[0] <= 3.5, moments


def test_tag_limit_holds_for_concurrently_submitted_tasks(
    any_server: RunningServer, tmp_path: Path
) -> None:
    created = run_client(
        any_server, ["-m", "prefect", "concurrency-limit", "create", "db", "1"], tmp_path
    )
    assert created.returncode == 0, created.stderr[-2000:]
    record = tmp_path / "tasks.txt"
    result = finish(spawn(any_server, tmp_path, "tagged", str(record), "4"), timeout=180)

    assert sorted(result["results"]) == [0, 1, 2, 3]
    most, enters, exits = most_inside(record)
    assert (most, enters, exits) == (1, 4, 4)
    inspect = api(any_server, "GET", "/concurrency_limits/tag/db").json()
    assert inspect["active_slots"] == [] and inspect["concurrency_limit"] == 1
    assert active_slots(any_server, "tag:db") == 0


def test_cli_round_trip(sqlite_server: RunningServer, tmp_path: Path) -> None:
    def cli(*args: str) -> str:
        done = run_client(sqlite_server, ["-m", "prefect", *args], tmp_path)
        assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
        return done.stdout

    assert "Created global concurrency limit" in cli(
        "gcl", "create", "cli-lim", "--limit", "2", "--slot-decay-per-second", "0.5"
    )
    assert "cli-lim" in cli("gcl", "ls")
    assert json.loads(cli("gcl", "inspect", "cli-lim", "--output", "json"))["limit"] == 2
    cli("gcl", "update", "cli-lim", "--limit", "3")
    cli("gcl", "disable", "cli-lim")
    found = api(sqlite_server, "GET", "/v2/concurrency_limits/cli-lim").json()
    assert (found["limit"], found["active"], found["slot_decay_per_second"]) == (3, False, 0.5)
    cli("gcl", "enable", "cli-lim")
    cli("gcl", "delete", "cli-lim")
    assert api(sqlite_server, "GET", "/v2/concurrency_limits/cli-lim").status_code == 404
    again = run_client(sqlite_server, ["-m", "prefect", "gcl", "inspect", "cli-lim"], tmp_path)
    assert again.returncode == 1 and "not found" in again.stdout

    cli("concurrency-limit", "create", "etl", "2")
    assert "etl" in cli("concurrency-limit", "inspect", "etl")
    assert "etl" in cli("concurrency-limit", "ls")
    tag_limit = api(sqlite_server, "GET", "/v2/concurrency_limits/tag:etl").json()
    assert tag_limit["limit"] == 2  # one record, two faces
    assert "Reset" in cli("concurrency-limit", "reset", "etl")
    cli("concurrency-limit", "delete", "etl")
    assert api(sqlite_server, "GET", "/concurrency_limits/tag/etl").status_code == 404
    missing = run_client(
        sqlite_server, ["-m", "prefect", "concurrency-limit", "inspect", "etl"], tmp_path
    )
    assert missing.returncode == 1


def test_bad_input(sqlite_server: RunningServer) -> None:
    s = sqlite_server
    v2 = "/v2/concurrency_limits"
    assert api(s, "POST", f"{v2}/", json={"name": "dup", "limit": 1}).status_code == 201
    flat = {"name": "flat", "limit": 1}
    assert api(s, "POST", f"{v2}/", json=flat).status_code == 201
    lease_body = {"names": ["dup"], "slots": 1, "lease_duration": 60}
    cases = [
        ("GET", f"{v2}/nope", None, 404),
        ("PATCH", f"{v2}/nope", {"limit": 3}, 404),
        ("DELETE", f"{v2}/nope", None, 404),
        ("POST", f"{v2}/", {"name": "dup", "limit": 1}, 409),
        ("POST", f"{v2}/", {"name": "neg", "limit": -1}, 422),
        ("POST", f"{v2}/", {"name": "big", "limit": 2**31}, 422),
        ("POST", f"{v2}/", {"name": "a/b", "limit": 1}, 422),
        ("POST", f"{v2}/", {"name": "d", "limit": 1, "slot_decay_per_second": -1}, 422),
        ("PATCH", f"{v2}/dup", {"limit": -5}, 422),
        ("POST", f"{v2}/increment-with-lease", {**lease_body, "slots": 2}, 422),
        ("POST", f"{v2}/increment-with-lease", {**lease_body, "slots": 0}, 422),
        ("POST", f"{v2}/increment-with-lease", {**lease_body, "names": []}, 422),
        ("POST", f"{v2}/increment-with-lease", {**lease_body, "lease_duration": 0}, 422),
        ("POST", f"{v2}/increment-with-lease", {**lease_body, "holder": {"type": "x"}}, 422),
        ("POST", f"{v2}/increment", {"names": ["flat"], "slots": 1, "mode": "rate_limit"}, 422),
        ("POST", f"{v2}/leases/not-a-uuid/renew", {"lease_duration": 60}, 422),
        ("POST", f"{v2}/leases/{'0' * 8}-0000-4000-8000-{'0' * 12}/renew", {}, 410),
        ("POST", f"{v2}/decrement-with-lease", {"lease_id": "not-a-uuid"}, 422),
        (
            "POST",
            f"{v2}/decrement-with-lease",
            {"lease_id": f"{'1' * 8}-1111-4111-8111-{'1' * 12}"},
            204,
        ),
        ("GET", "/concurrency_limits/tag/nope", None, 404),
        ("GET", "/concurrency_limits/not-a-uuid", None, 422),
        ("POST", "/concurrency_limits/tag/nope/reset", {"slot_override": None}, 404),
        ("DELETE", "/concurrency_limits/tag/nope", None, 404),
        ("POST", "/concurrency_limits/", {"tag": "t", "concurrency_limit": -1}, 422),
        ("POST", "/concurrency_limits/increment", {"names": ["t"], "task_run_id": "x"}, 422),
    ]
    for method, path, body, status in cases:
        got = api(s, method, path, json=body) if body is not None else api(s, method, path)
        assert got.status_code == status, (method, path, body, got.status_code, got.text)
        if status >= 400:
            assert got.json()["detail"], (path, got.text)

    # Unknown names are skipped, as the reference does.
    skipped = api(s, "POST", f"{v2}/increment-with-lease", json={**lease_body, "names": ["nope"]})
    assert skipped.status_code == 200 and skipped.json()["limits"] == []
    assert api(s, "POST", f"{v2}/increment", json={"names": ["nope"], "slots": 1}).json() == []

    # A full limit answers 423 with a Retry-After the client can parse.
    assert api(s, "POST", f"{v2}/increment-with-lease", json=lease_body).status_code == 200
    started = time.monotonic()
    full = api(s, "POST", f"{v2}/increment-with-lease", json=lease_body)
    assert full.status_code == 423 and float(full.headers["Retry-After"]) > 0
    assert time.monotonic() - started >= 4  # held for a slot first

    zero = api(s, "POST", "/concurrency_limits/", json={"tag": "zero", "concurrency_limit": 0})
    assert zero.status_code == 201
    locked = api(
        s,
        "POST",
        "/concurrency_limits/increment",
        json={"names": ["zero"], "task_run_id": f"{'2' * 8}-2222-4222-8222-{'2' * 12}"},
    )
    assert locked.status_code == 423 and "Retry-After" not in locked.headers
    assert "deadlock" in locked.json()["detail"]
