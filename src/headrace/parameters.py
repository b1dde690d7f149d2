"""Checking run parameters against a deployment's parameter schema (``enforce_parameter_schema``).

The client sends each deployment's ``parameter_openapi_schema`` (a JSON schema
with ``definitions`` referenced in-document). A run created from a deployment
that enforces its schema must conform, or the request is refused with 409 and a
``detail`` naming the field, worded as the reference words it.
"""

from __future__ import annotations

import copy
from typing import Any

from headrace.errors import Conflict, InvalidInput
from headrace.types import WireDict

_BLOCK_REFERENCE = {
    "type": "object",
    "properties": {
        "$ref": {
            "oneOf": [
                {"type": "string", "format": "uuid"},
                {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1},
            ]
        }
    },
    "required": ["$ref"],
}


def _relax_properties(properties: dict[str, Any], required: list[str]) -> None:
    """What the client's schemas mean but do not say in Draft 2020-12 terms.

    An optional parameter without a default may be None; a tuple's ``items``
    list is ``prefixItems``.
    """
    for key, prop in properties.items():
        if not isinstance(prop, dict):
            continue
        if (
            key not in required
            and "type" in prop
            and prop["type"] != "null"
            and "default" not in prop
        ):
            prop["anyOf"] = [{"type": prop.pop("type")}, {"type": "null"}]
        if isinstance(prop.get("items"), list):
            prop["prefixItems"] = prop.pop("items")
        if isinstance(prop.get("properties"), dict):
            _relax_properties(prop["properties"], prop.get("required") or [])


def relaxed(schema: WireDict) -> WireDict:
    """``schema`` as the client means it (a copy); a block may also be given by reference."""
    schema = copy.deepcopy(schema)
    if isinstance(schema.get("properties"), dict):
        _relax_properties(schema["properties"], schema.get("required") or [])
    definitions = schema.get("definitions")
    if isinstance(definitions, dict):
        for name, definition in list(definitions.items()):
            if not isinstance(definition, dict):
                continue
            if isinstance(definition.get("properties"), dict):
                _relax_properties(definition["properties"], definition.get("required") or [])
            if "block_type_slug" in definition:
                definitions[name] = {"oneOf": [definition, _BLOCK_REFERENCE]}
    return schema


def _without_required(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_required(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [_without_required(v) for v in schema]
    return schema


def check(parameters: WireDict, schema: Any, action: str, ignore_required: bool = False) -> None:
    """Raise unless ``parameters`` conform to ``schema``.

    Args:
        parameters: the run's (or deployment's) parameters.
        schema: the deployment's ``parameter_openapi_schema``.
        action: how the detail starts ("creating flow run", "updating deployment").
        ignore_required: a deployment update may leave required parameters unset.

    Raises:
        Conflict: the parameters do not conform, or there is no usable schema.
        InvalidInput: the schema refers to itself in a circle.
    """
    import jsonschema  # several MB; only enforced deployments need it
    import referencing.exceptions

    if not isinstance(schema, dict):
        raise Conflict(
            f"Error {action}: Cannot update parameters because parameter schema enforcement"
            " is enabled and the deployment does not have a valid parameter schema."
        )
    schema = relaxed(schema)
    if ignore_required:
        schema = _without_required(schema)
    try:
        jsonschema.validate(parameters, schema, cls=jsonschema.Draft202012Validator)
    except RecursionError:
        raise InvalidInput(
            "Invalid schema: Unable to validate schema with circular references."
        ) from None
    except referencing.exceptions.Unresolvable as exc:
        raise Conflict(f"Error {action}: Validation failed. Failure reason: {exc}") from None
    except jsonschema.ValidationError as exc:
        where = (
            "Validation failed."
            if exc.json_path == "$"
            else f"Validation failed for field {exc.json_path.replace('$.', '')!r}."
        )
        raise Conflict(f"Error {action}: {where} Failure reason: {exc.message}") from None
    except jsonschema.SchemaError as exc:
        raise InvalidInput(f"Invalid parameter schema: {exc.message}") from None
