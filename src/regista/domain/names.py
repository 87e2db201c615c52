"""Names, references and manifest paths: validated before anything else sees them."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import TypeGuard

from regista.errors import BadRequest, Invalid

MAX_NAME = 128
MAX_PATH = 1024
MAX_PATH_PART = 255

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_RUNS = re.compile(r"[-_.]+")
_ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_DIGEST_RE = re.compile(r"[0-9a-f]{64}\Z")
# One path component: printable ASCII minus separators, quoting and shell-hostile bytes.
_PART_RE = re.compile(r"[A-Za-z0-9._+=@,-][A-Za-z0-9._+=@,() -]*\Z")
RESERVED_ALIASES = frozenset({"latest"})


def validate_name(name: str, *, what: str = "model name") -> str:
    """Check a model (or principal, environment) name; return it unchanged."""
    if not isinstance(name, str) or not name:
        raise Invalid(f"{what} must not be empty", details={"field": what})
    if len(name) > MAX_NAME:
        raise Invalid(
            f"{what} is longer than {MAX_NAME} characters", details={"field": what}
        )
    if not _NAME_RE.match(name):
        raise Invalid(
            f"{what} {name!r} may contain only ASCII letters, digits, '-', '_' and '.', "
            "and must start with a letter or digit",
            details={"field": what, "value": name},
        )
    return name


def normalize_name(name: str) -> str:
    """The unique form of a name, as Python package names: lowercase, runs of -_. → -."""
    return _RUNS.sub("-", name).lower()


def validate_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS_RE.match(alias) or len(alias) > MAX_NAME:
        raise Invalid(
            f"alias {alias!r} must start with a letter and contain only letters, digits, "
            f"'-' and '_' (at most {MAX_NAME})",
            details={"field": "alias", "value": alias},
        )
    if alias.lower() in RESERVED_ALIASES:
        raise Invalid(f"alias {alias!r} is reserved", details={"field": "alias"})
    return alias


def is_digest(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a well-formed digest: lowercase 64-hex sha256.

    Uppercase is refused rather than folded so that one blob has exactly one name.
    """
    return isinstance(value, str) and _DIGEST_RE.match(value) is not None


def validate_digest(digest: object) -> str:
    """Return ``digest`` if :func:`is_digest`, else raise BadRequest naming it."""
    if not is_digest(digest):
        raise BadRequest(
            "digest must be 64 lowercase hexadecimal characters (sha256)",
            details={"field": "digest", "value": str(digest)[:100]},
        )
    return digest


def validate_manifest_path(path: str) -> str:
    """A relative POSIX path inside a version; never joined raw onto a disk path.

    Refuses absolute paths, ``..``/``.`` components, backslashes, NUL and control
    characters, percent-encoding, non-ASCII (look-alikes), empty components.
    """
    def bad(reason: str) -> Invalid:
        return Invalid(f"file path {path[:200]!r} is not allowed: {reason}",
                       details={"field": "path", "value": path[:200], "reason": reason})

    if not isinstance(path, str) or not path:
        raise bad("empty")
    if len(path) > MAX_PATH:
        raise bad(f"longer than {MAX_PATH} characters")
    if unicodedata.normalize("NFKC", path) != path or not path.isascii():
        raise bad("only ASCII characters are allowed")
    if "\\" in path:
        raise bad("backslashes are not allowed")
    if "%" in path:
        raise bad("percent-encoding is not allowed")
    if path.startswith("/"):
        raise bad("absolute paths are not allowed")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise bad("empty, '.' or '..' components are not allowed")
        if len(part) > MAX_PATH_PART:
            raise bad(f"a component is longer than {MAX_PATH_PART} characters")
        if not _PART_RE.match(part) or part.endswith(" "):
            raise bad("a component contains characters that are not allowed")
    return path


@dataclass(frozen=True, slots=True)
class VersionRef:
    """``name/7``, ``name@alias`` or ``name@latest`` (or ``name`` alone: latest)."""

    model: str
    number: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, ref: str) -> VersionRef:
        if not isinstance(ref, str) or not ref or len(ref) > 2 * MAX_NAME + 1:
            raise Invalid("a version reference must look like NAME/7, NAME@alias or "
                          "NAME@latest", details={"field": "ref"})
        if "@" in ref:
            model, _, alias = ref.partition("@")
            validate_name(model)
            if alias.lower() == "latest":
                return cls(model=model, alias="latest")
            return cls(model=model, alias=validate_alias(alias))
        if "/" in ref:
            model, _, num = ref.partition("/")
            validate_name(model)
            if not num.isdigit() or len(num) > 9 or int(num) < 1:
                raise Invalid(f"version number {num[:20]!r} is not a positive integer",
                              details={"field": "ref"})
            return cls(model=model, number=int(num))
        validate_name(ref)
        return cls(model=ref, alias="latest")

    def __str__(self) -> str:
        if self.number is not None:
            return f"{self.model}/{self.number}"
        return f"{self.model}@{self.alias}"
