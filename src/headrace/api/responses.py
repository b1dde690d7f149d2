"""Fast JSON responses with timezone-aware ``Z`` datetimes."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS)


class JSON(JSONResponse):
    """A JSON response serialised with orjson."""

    def render(self, content: Any) -> bytes:
        return dumps(content)
