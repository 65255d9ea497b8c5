"""The one exception type the core raises: it carries the oneM2M response status code."""

from __future__ import annotations

from m2mcloud.cse.constants import RSC


class CSEError(Exception):
    """A request failed with a oneM2M response status code and an operator-readable reason."""

    def __init__(self, rsc: RSC, message: str) -> None:
        super().__init__(message)
        self.rsc = rsc
        self.message = message

    def __repr__(self) -> str:
        return f"CSEError({self.rsc.name}={int(self.rsc)}, {self.message!r})"


def bad_request(message: str) -> CSEError:
    return CSEError(RSC.BAD_REQUEST, message)


def not_found(message: str) -> CSEError:
    return CSEError(RSC.NOT_FOUND, message)


def no_privilege(message: str) -> CSEError:
    return CSEError(RSC.ORIGINATOR_HAS_NO_PRIVILEGE, message)


def not_allowed(message: str) -> CSEError:
    return CSEError(RSC.OPERATION_NOT_ALLOWED, message)
