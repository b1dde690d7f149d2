"""Variables and artifacts through the real client; prints one JSON object of results.

Variables: every JSON value type set and read back, overwrite, the default for a
missing name, unset. Artifacts: one of each type inside a flow and its task, a
second version of a key, a progress artifact updated, reads by key.
"""

import json

from prefect import flow, task
from prefect.artifacts import (
    Artifact,
    create_image_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.client.orchestration import get_client
from prefect.client.schemas.sorting import ArtifactCollectionSort
from prefect.variables import Variable

VALUES = {
    "v-str": "text",
    "v-int": 42,
    "v-float": 2.5,
    "v-bool": False,
    "v-null": None,
    "v-list": [1, "two", None, {"three": 3}],
    "v-dict": {"nested": {"list": [1.5, True]}},
}


def variables() -> dict:
    for name, value in VALUES.items():
        Variable.set(name, value, tags=["acceptance"])
    read = {name: Variable.get(name) for name in VALUES}
    try:
        Variable.set("v-str", "again")
        refused = None
    except ValueError as exc:
        refused = str(exc)
    Variable.set("v-str", "overwritten", overwrite=True)
    overwritten = Variable.get("v-str")
    missing = Variable.get("no-such-variable", default="fallback")
    Variable.unset("v-null")
    after_unset = Variable.get("v-null", default="gone")
    return {
        "read": read,
        "refused": refused,
        "overwritten": overwritten,
        "missing": missing,
        "after_unset": after_unset,
    }


@task
def in_task() -> str:
    create_markdown_artifact("# from a task", key="task-md", description="task artifact")
    return "ok"


@flow
def reporting() -> dict:
    in_task()
    create_markdown_artifact("# first", key="report")
    create_markdown_artifact("# second", key="report", description="newer")
    create_table_artifact([{"a": 1, "b": 2}, {"a": 3, "b": None}], key="table")
    create_link_artifact("https://example.com", link_text="example", key="link")
    create_image_artifact("https://example.com/i.png", key="image")
    progress = create_progress_artifact(10.0, key="progress")
    update_progress_artifact(progress, 75.0, description="three quarters")
    return {"progress_id": str(progress)}


def artifacts() -> dict:
    ids = reporting()
    report = Artifact.get("report")
    progress = Artifact.get("progress")
    task_md = Artifact.get("task-md")
    with get_client(sync_client=True) as client:
        latest = client.read_latest_artifacts(sort=ArtifactCollectionSort.KEY_ASC)
    return {
        "progress_id": ids["progress_id"],
        "report": {"data": report.data, "description": report.description},
        "progress": {"id": str(progress.id), "data": progress.data, "type": progress.type},
        "task_md": {
            "task_run_id": str(task_md.task_run_id),
            "flow_run_id": str(task_md.flow_run_id),
        },
        "latest": [
            {"key": c.key, "type": c.type, "latest_id": str(c.latest_id), "data": c.data}
            for c in latest
        ],
    }


if __name__ == "__main__":
    print(json.dumps({"variables": variables(), "artifacts": artifacts()}))
