"""Typed provenance metadata of a version, and the required-field check."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

Short = Annotated[str, StringConstraints(max_length=1024)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Scalar = str | int | float | bool | None


class TrainingData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    uri: Short | None = None
    version: Short | None = None
    digest: Short | None = None


class TrainingCode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repository: Short | None = None
    commit: Short | None = None
    dirty: bool | None = None


class Environment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    python: Annotated[str, StringConstraints(max_length=64)] | None = None
    packages: dict[Key, Short] = Field(default_factory=dict, max_length=2000)


class Provenance(BaseModel):
    """Where a version came from. Frozen once the version is sealed."""

    model_config = ConfigDict(extra="forbid")

    training_data: TrainingData | None = None
    training_code: TrainingCode | None = None
    parameters: dict[Key, Scalar] = Field(default_factory=dict, max_length=2000)
    metrics: dict[Key, float] = Field(default_factory=dict, max_length=2000)
    environment: Environment | None = None
    framework: Annotated[str, StringConstraints(max_length=64)] | None = None
    parent_version: Annotated[str, StringConstraints(max_length=300)] | None = None
    intended_use: Annotated[str, StringConstraints(max_length=20000)] | None = None
    extras: dict[Key, Any] = Field(default_factory=dict, max_length=1000)

    @field_validator("metrics")
    @classmethod
    def _finite(cls, v: dict[str, float]) -> dict[str, float]:
        for name, value in v.items():
            if not math.isfinite(value):
                raise ValueError(f"metric {name!r} must be a finite number")
        return v

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=False)


def missing_fields(doc: dict[str, Any], required: list[str]) -> list[str]:
    """Dotted paths in ``required`` that are absent or empty in ``doc``."""
    missing = []
    for path in required:
        node: Any = doc
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if node is None or node == "" or node == {} or node == []:
            missing.append(path)
    return missing
