"""The server's default result storage through the real client; prints one JSON object.

(3.9.1 ships a ``result-storage`` CLI module but does not register the command,
so the client's own calls are used.) Saves a LocalFileSystem block (basepath =
argv[1]) and a Secret; refuses the Secret as storage; sets the LocalFileSystem;
runs a flow that persists its result with no storage of its own; clears; sets
again and deletes the block.
"""

import json
import os
import sys

from prefect import flow
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.exceptions import PrefectHTTPStatusError
from prefect.filesystems import LocalFileSystem


@flow(persist_result=True)
def answer() -> int:
    return 42


def main() -> dict:
    basepath = sys.argv[1]
    out: dict = {}
    storage_id = LocalFileSystem(basepath=basepath).save("results")
    secret_id = Secret(value="x").save("not-storage")
    with get_client(sync_client=True) as client:
        out["initial"] = client.read_server_default_result_storage().default_result_storage_block_id
        try:
            client.update_server_default_result_storage(secret_id)
        except PrefectHTTPStatusError as exc:
            out["refused"] = [exc.response.status_code, exc.response.json()["detail"]]
        set_to = client.update_server_default_result_storage(storage_id)
        out["set"] = str(set_to.default_result_storage_block_id) == str(storage_id)

    out["result"] = answer(return_state=True).result()
    out["files"] = sorted(os.listdir(basepath))

    with get_client(sync_client=True) as client:
        client.clear_server_default_result_storage()
        out["cleared"] = client.read_server_default_result_storage().default_result_storage_block_id
        client.update_server_default_result_storage(storage_id)
        client.delete_block_document(storage_id)
        out["after_delete"] = (
            client.read_server_default_result_storage().default_result_storage_block_id
        )
    return out


if __name__ == "__main__":
    print(json.dumps(main(), default=str))
