"""The exceptions headrace raises; `api/` maps each to a status code."""

from __future__ import annotations


class HeadraceError(Exception):
    """Root of every error headrace raises on purpose."""


class ConfigError(HeadraceError):
    """A setting is missing or invalid; the message names the variable."""


class NotFound(HeadraceError):
    """The object asked for does not exist."""


class AlreadyExists(HeadraceError):
    """A uniqueness rule was violated."""


class Conflict(HeadraceError):
    """The request conflicts with the object's current state or rules (HTTP 409)."""


class InvalidInput(HeadraceError):
    """The request is well-formed JSON but asks for something impossible."""


class Unavailable(HeadraceError):
    """A transient condition (database unreachable, queue full); retry later."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after
