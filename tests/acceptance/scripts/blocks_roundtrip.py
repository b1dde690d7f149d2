"""Blocks through the real client; prints one JSON object of results.

A built-in ``Secret`` (text and JSON values), a user block nesting another saved
user block and holding ``SecretStr`` fields, an inline (unsaved) nested block,
``save(overwrite=True)``, loading by name, ``Block.delete``.
"""

import json

from prefect.blocks.core import Block
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.filesystems import LocalFileSystem
from pydantic import SecretStr


class ApiCredentials(Block):
    token: SecretStr
    user: str = "anonymous"


class ServiceConnection(Block):
    credentials: ApiCredentials
    host: str
    password: SecretStr
    options: dict | None = None


def main() -> dict:
    Secret(value="s3cr3t").save("plain-secret")
    Secret(value={"user": "ada", "key": "k"}).save("json-secret")
    try:
        Secret(value="other").save("plain-secret")
        refused = None
    except ValueError as exc:
        refused = str(exc)
    Secret(value="rotated").save("plain-secret", overwrite=True)

    credentials = ApiCredentials(token="tok-1", user="ada")
    credentials.save("creds")
    ServiceConnection(
        credentials=credentials, host="db.local", password="pw", options={"ssl": True}
    ).save("service")
    ServiceConnection(
        credentials=ApiCredentials(token="inline-tok"), host="h2", password="pw2"
    ).save("inline-service")
    LocalFileSystem(basepath="/tmp/headrace-blocks").save("local")

    service = ServiceConnection.load("service")
    inline = ServiceConnection.load("inline-service")
    ServiceConnection(credentials=credentials, host="db.remote", password="pw").save(
        "service", overwrite=True
    )
    overwritten = ServiceConnection.load("service")
    with get_client(sync_client=True) as client:
        hidden = client.read_block_document_by_name(
            "service", ServiceConnection.get_block_type_slug(), include_secrets=False
        )
    ServiceConnection.delete("inline-service")
    try:
        ServiceConnection.load("inline-service")
        deleted = False
    except ValueError:
        deleted = True
    return {
        "refused": refused,
        "plain": Secret.load("plain-secret").get(),
        "json": Secret.load("json-secret").get(),
        "service": {
            "host": service.host,
            "password": service.password.get_secret_value(),
            "token": service.credentials.token.get_secret_value(),
            "user": service.credentials.user,
            "nested_id": str(service.credentials._block_document_id),
            "creds_id": str(credentials._block_document_id),
            "options": service.options,
        },
        "inline_token": inline.credentials.token.get_secret_value(),
        "overwritten_host": overwritten.host,
        "hidden": hidden.data,
        "local_basepath": LocalFileSystem.load("local").basepath,
        "deleted": deleted,
    }


if __name__ == "__main__":
    print(json.dumps(main()))
