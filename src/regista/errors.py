"""The one error hierarchy of Regista.

Every layer raises these; the HTTP layer maps them to status codes in one place
(``regista.api.errors``) and the client turns the JSON back into the same classes.

::

    RegistryError (500, internal)
    ├── BadRequest (400, bad_request)
    │   ├── FilterSyntaxError (400, filter_syntax)
    │   ├── DigestMismatch (400, digest_mismatch)
    │   └── InvalidCursor (400, invalid_cursor)
    ├── Unauthenticated (401, unauthenticated)
    ├── Forbidden (403, forbidden)
    ├── NotFound (404, not_found)
    ├── Conflict (409, conflict)
    │   └── ImmutableConflict (409, immutable)
    ├── PayloadTooLarge (413, payload_too_large)
    ├── RangeNotSatisfiable (416, range_not_satisfiable)
    ├── Invalid (422, invalid)
    │   └── MissingMetadata (422, missing_metadata)
    └── Unavailable (503, unavailable)
"""

from __future__ import annotations

from typing import Any, ClassVar


class RegistryError(Exception):
    """Base of every error Regista raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The wire form: ``{"error": {"code", "message", "details"}}``."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, details={self.details!r})"


class BadRequest(RegistryError):
    status = 400
    code = "bad_request"


class FilterSyntaxError(BadRequest):
    code = "filter_syntax"

    def __init__(self, message: str, *, position: int, filter: str) -> None:
        super().__init__(
            f"{message} at position {position}",
            details={"position": position, "filter": filter},
        )
        self.position = position


class DigestMismatch(BadRequest):
    code = "digest_mismatch"


class InvalidCursor(BadRequest):
    code = "invalid_cursor"


class Unauthenticated(RegistryError):
    status = 401
    code = "unauthenticated"


class Forbidden(RegistryError):
    status = 403
    code = "forbidden"


class NotFound(RegistryError):
    status = 404
    code = "not_found"


class Conflict(RegistryError):
    status = 409
    code = "conflict"


class ImmutableConflict(Conflict):
    code = "immutable"


class PayloadTooLarge(RegistryError):
    status = 413
    code = "payload_too_large"


class RangeNotSatisfiable(RegistryError):
    status = 416
    code = "range_not_satisfiable"


class Invalid(RegistryError):
    status = 422
    code = "invalid"


class MissingMetadata(Invalid):
    code = "missing_metadata"

    def __init__(self, missing: list[str], *, stage: str = "registered") -> None:
        super().__init__(
            f"missing required metadata for stage {stage!r}: {', '.join(missing)}",
            details={"missing": missing, "stage": stage},
        )
        self.missing = missing


class Unavailable(RegistryError):
    status = 503
    code = "unavailable"


_BY_CODE: dict[str, type[RegistryError]] = {}


def _collect(cls: type[RegistryError]) -> None:
    _BY_CODE.setdefault(cls.code, cls)
    for sub in cls.__subclasses__():
        _collect(sub)


def error_class_for(code: str, status: int) -> type[RegistryError]:
    """The exception class for a wire error code (used by the client)."""
    if not _BY_CODE:
        _collect(RegistryError)
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls
    for base in (BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, PayloadTooLarge,
                 RangeNotSatisfiable, Invalid, Unavailable):
        if base.status == status:
            return base
    return RegistryError


def from_wire(code: str, status: int, message: str, details: dict[str, Any]) -> RegistryError:
    """Rebuild a server error on the client side, keeping class, message and details."""
    cls = error_class_for(code, status)
    err = RegistryError.__new__(cls)
    RegistryError.__init__(err, message, details=details)
    if cls is FilterSyntaxError:
        err.position = int(details.get("position", 0))  # type: ignore[attr-defined]
    if cls is MissingMetadata:
        err.missing = list(details.get("missing", []))  # type: ignore[attr-defined]
    return err
