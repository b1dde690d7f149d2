"""Pure rules for block documents: schema checksums, secret hiding, nested references.

The checksum must equal the one the client computes for the same schema
(``Block._calculate_schema_checksum``): the client looks a schema up by the
checksum it computed locally and registers it when the server does not know it,
so a different hash would register a new schema on every ``save``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from headrace.types import WireDict

OBFUSCATED = "********"
"""What a secret value reads as without ``include_secrets`` (any value, any length)."""

_DEFINITION_PREFIX = "#/definitions/"


def schema_checksum(fields: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of a block schema, computed as the client computes it.

    Canonical form: ``secret_fields`` keys removed at every level of nested
    objects (not inside lists); ``definitions`` cut down to those reachable from
    the schema that are not blocks themselves (dropped when none are left); then
    the JSON text of ``[[fields], {}]`` with sorted keys and the standard library's
    default separators and ASCII escaping.

    Args:
        fields: the schema's JSON schema, as the client sends it.
    """
    canonical = _without_key("secret_fields", fields)
    definitions = canonical.get("definitions")
    if definitions:
        kept = _plain_definitions(canonical, definitions)
        if kept:
            canonical["definitions"] = kept
        else:
            canonical.pop("definitions")
    text = json.dumps([[canonical], {}], sort_keys=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _without_key(key: str, value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    return {k: _without_key(key, v) for k, v in value.items() if k != key}


def _references(value: Any) -> Iterator[str]:
    """Every ``$ref`` string anywhere under ``value``, depth first."""
    if isinstance(value, Mapping):
        ref = value.get("$ref")
        if isinstance(ref, str):
            yield ref
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def _plain_definitions(root: Any, definitions: Mapping[str, Any]) -> dict[str, Any]:
    """Definitions reachable from ``root`` that are not blocks (no ``block_type_slug``)."""
    kept: dict[str, Any] = {}
    pending = [root]
    seen: set[str] = set()
    while pending:
        for ref in _references(pending.pop()):
            name = ref.replace(_DEFINITION_PREFIX, "")
            definition = definitions.get(name)
            if name in seen or not definition or not isinstance(definition, Mapping):
                continue
            if definition.get("block_type_slug") is None:
                seen.add(name)
                kept[name] = definition
                pending.append(definition)
    return kept


# -- secrets ---------------------------------------------------------------------


def _walk(data: Any, path: list[str]) -> tuple[dict[str, Any], str] | None:
    """The object holding the last key of ``path`` under ``data``, and that key."""
    node = data
    for key in path[:-1]:
        if not isinstance(node, dict) or not isinstance(node.get(key), dict):
            return None
        node = node[key]
    if not path or not isinstance(node, dict) or path[-1] not in node:
        return None
    return node, path[-1]


def _leaves(value: dict[str, Any], prefix: list[str]) -> Iterator[list[str]]:
    """The path of every value under ``value`` that is not a non-empty object."""
    for key, item in value.items():
        if isinstance(item, dict) and item:
            yield from _leaves(item, [*prefix, key])
        else:
            yield [*prefix, key]


def _secret_paths(data: WireDict, field: str) -> Iterator[list[str]]:
    """The paths in ``data`` that one ``secret_fields`` entry covers.

    A plain dot path (``token``, ``child.password``) covers itself when present. A
    path with ``*`` covers every value below the part before the star (the part
    itself when that holds no object).
    """
    path = field.split(".")
    if "*" not in path:
        if _walk(data, path) is not None:
            yield path
        return
    prefix = path[: path.index("*")]
    if not prefix:
        yield from _leaves(data, [])
        return
    found = _walk(data, prefix)
    if found is None:
        return
    below = found[0][found[1]]
    if isinstance(below, dict) and below:
        yield from _leaves(below, prefix)
    else:
        yield prefix


def obfuscate(data: WireDict, secret_fields: list[str]) -> WireDict:
    """A copy of ``data`` whose secret values read ``********``.

    ``secret_fields`` holds the schema's dot paths. A secret that holds a JSON
    object is hidden whole (the reference leaves such objects readable); unset
    (null) plain secrets stay null.
    """
    hidden = copy.deepcopy(data)
    for field in secret_fields:
        wildcard = "*" in field.split(".")
        for path in list(_secret_paths(hidden, field)):
            found = _walk(hidden, path)
            if found is not None and (wildcard or found[0][found[1]] is not None):
                found[0][found[1]] = OBFUSCATED
    return hidden


def keep_hidden_secrets(update: WireDict, current: WireDict, secret_fields: list[str]) -> WireDict:
    """``update`` with every ``********`` at a secret path replaced by the stored value.

    A client that read a document without secrets and sends it back unchanged
    must not overwrite the secrets with asterisks.
    """
    merged = copy.deepcopy(update)
    for field in secret_fields:
        for path in list(_secret_paths(merged, field)):
            target = _walk(merged, path)
            stored = _walk(current, path)
            if target is None or stored is None or target[0][target[1]] != OBFUSCATED:
                continue
            if stored[0][stored[1]] is not None:
                target[0][target[1]] = copy.deepcopy(stored[0][stored[1]])
    return merged


# -- nested documents ---------------------------------------------------------------


def reference_of(value: Any) -> str | None:
    """The block document id a data value points to (``{"$ref": {"block_document_id"}}``).

    A valid UUID comes back in canonical form; anything else as given, for the
    caller to refuse.
    """
    if not isinstance(value, dict) or not isinstance(value.get("$ref"), dict):
        return None
    ref = value["$ref"].get("block_document_id")
    if ref is None:
        return None
    try:
        return str(uuid.UUID(str(ref)))
    except ValueError:
        return str(ref)


def references(data: WireDict) -> dict[str, str]:
    """Top-level keys of ``data`` that point at other block documents, with their ids.

    Only top-level values count, as in the reference: the client writes a saved
    nested block as ``{"$ref": {"block_document_id": ...}}`` under its field name.
    """
    found: dict[str, str] = {}
    for key, value in data.items():
        ref = reference_of(value)
        if ref is not None:
            found[key] = ref
    return found
