"""Environments, deployments and their history, observations and drift."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from regista.client._base import BaseClient, Pager, quote
from regista.client.types import parse_time


def _instant(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


def _opt_time(value: Any) -> datetime | None:
    return parse_time(value) if value else None


@dataclass(frozen=True, slots=True)
class EnvironmentInfo:
    """A place where models serve, and the lowest stage a version needs to serve there."""

    name: str
    min_stage: str
    description: str
    created_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EnvironmentInfo:
        return cls(name=d["name"], min_stage=d["min_stage"], description=d.get("description") or "",
                   created_at=_opt_time(d.get("created_at")), raw=d)


@dataclass(frozen=True, slots=True)
class DeploymentEvent:
    """One entry of the deployment history; ``version`` None: the model stopped serving."""

    id: int
    kind: str  # deploy | end
    environment: str
    model: str
    version: int | None
    previous_version: int | None
    at: datetime
    recorded_at: datetime
    recorded_by: str
    note: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DeploymentEvent:
        return cls(id=int(d["id"]), kind=d["kind"], environment=d["environment"], model=d["model"],
                   version=d.get("version"), previous_version=d.get("previous_version"),
                   at=parse_time(d["at"]), recorded_at=parse_time(d["recorded_at"]),
                   recorded_by=d["recorded_by"], note=d.get("note") or "", raw=d)


@dataclass(frozen=True, slots=True)
class Deployment:
    """A version serving in an environment (as of some instant), since when."""

    environment: str
    model: str
    version: int
    ref: str
    digest: str
    stage: str
    since: datetime
    recorded_by: str
    note: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Deployment:
        return cls(environment=d["environment"], model=d["model"], version=int(d["version"]),
                   ref=d["ref"], digest=d["digest"], stage=d["stage"], since=parse_time(d["since"]),
                   recorded_by=d["recorded_by"], note=d.get("note") or "", raw=d)


@dataclass(frozen=True, slots=True)
class ServingInterval:
    """One stretch ``[start, end)`` a version served somewhere; ``end`` None: still serving."""

    environment: str
    model: str
    version: int
    start: datetime
    end: datetime | None
    recorded_by: str
    ended_by: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ServingInterval:
        return cls(environment=d["environment"], model=d["model"], version=int(d["version"]),
                   start=parse_time(d["start"]), end=_opt_time(d.get("end")),
                   recorded_by=d["recorded_by"], ended_by=d.get("ended_by"), raw=d)


@dataclass(frozen=True, slots=True)
class ServedAnswer:
    """Which version of a model served in an environment at an instant, who approved it, and
    on what evidence (``transitions``: the applied requests with their checks and approvals)."""

    environment: str
    model: str
    at: datetime
    serving: bool
    version: int | None
    ref: str | None
    digest: str | None
    since: datetime | None
    recorded_by: str | None
    stage_at: str | None
    approved_by: list[str]
    transitions: list[dict[str, Any]]
    stage_history: list[dict[str, Any]]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ServedAnswer:
        return cls(environment=d["environment"], model=d["model"], at=parse_time(d["at"]),
                   serving=bool(d["serving"]), version=d.get("version"), ref=d.get("ref"),
                   digest=d.get("digest"), since=_opt_time(d.get("since")),
                   recorded_by=d.get("recorded_by"), stage_at=d.get("stage_at"),
                   approved_by=list(d.get("approved_by") or []),
                   transitions=list(d.get("transitions") or []),
                   stage_history=list(d.get("stage_history") or []), raw=d)


@dataclass(frozen=True, slots=True)
class Observation:
    id: int
    environment: str
    digest: str
    observed_at: datetime
    reported_by: str
    instance: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Observation:
        return cls(id=int(d["id"]), environment=d["environment"], digest=d["digest"],
                   observed_at=parse_time(d["observed_at"]), reported_by=d["reported_by"],
                   instance=d.get("instance") or "", raw=d)


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Per environment: recorded vs observed state. ``environments`` is the JSON list, each
    with ``environment``, ``in_sync``, ``recorded``, ``observed`` and ``drift`` items
    (``kind``: mismatch | unregistered | unrecorded | not_observed)."""

    generated_at: datetime
    window_seconds: int
    in_sync: bool
    environments: list[dict[str, Any]]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DriftReport:
        return cls(generated_at=parse_time(d["generated_at"]), window_seconds=int(d["window_seconds"]),
                   in_sync=bool(d["in_sync"]), environments=list(d["environments"]), raw=d)


class DeploymentsMixin(BaseClient):
    """Record where versions serve and ask what served where, when."""

    # ------------------------------------------------------------------ environments

    def environments(self) -> list[EnvironmentInfo]:
        """Every environment (recorded, or declared by the policy)."""
        body = self._json("GET", "/api/v1/environments")
        return [EnvironmentInfo.from_json(e) for e in body["items"]]

    def ensure_environment(self, name: str, min_stage: str, description: str = "") -> EnvironmentInfo:
        """Create an environment or change its minimum stage (admin; normally the policy does)."""
        body = {"name": name, "min_stage": min_stage, "description": description}
        return EnvironmentInfo.from_json(
            self._json("POST", "/api/v1/environments", json=body, expected=(200, 201)))

    # ------------------------------------------------------------------ recording

    def record_deployment(self, ref: str, environment: str, *, at: datetime | str | None = None,
                          note: str = "") -> DeploymentEvent:
        """Record that ``ref`` (``NAME/7`` or ``NAME@alias``) serves in ``environment`` from
        ``at`` (default now). Recording what already serves there returns the standing event."""
        body = {"ref": ref, "environment": environment, "at": _instant(at), "note": note}
        return DeploymentEvent.from_json(
            self._json("POST", "/api/v1/deployments", json=body, expected=(200, 201)))

    def end_deployment(self, model: str, environment: str, *, at: datetime | str | None = None,
                       note: str = "") -> DeploymentEvent:
        """Record that ``model`` stopped serving in ``environment`` at ``at`` (default now)."""
        body = {"model": model, "environment": environment, "at": _instant(at), "note": note}
        return DeploymentEvent.from_json(
            self._json("POST", "/api/v1/deployments/end", json=body, expected=(201,)))

    # ------------------------------------------------------------------ questions

    def deployed_at(self, environment: str, at: datetime | str | None = None) -> list[Deployment]:
        """What served in ``environment`` at ``at`` (default now), one entry per model."""
        body = self._json("GET", f"/api/v1/environments/{quote(environment)}/deployments",
                          params={"at": _instant(at)})
        return [Deployment.from_json(d) for d in body["items"]]

    def served(self, environment: str, model: str,
               at: datetime | str | None = None) -> ServedAnswer:
        """Which version of ``model`` served in ``environment`` at ``at``, who approved it and
        on what evidence: the auditor's question in one call."""
        return ServedAnswer.from_json(self._json(
            "GET", f"/api/v1/environments/{quote(environment)}/served",
            params={"model": model, "at": _instant(at)}))

    def timeline(
        self, environment: str, *, since: datetime | str | None = None,
        until: datetime | str | None = None, model: str | None = None,
        oldest_first: bool = False, page_size: int | None = None, limit: int | None = None,
    ) -> Pager[DeploymentEvent]:
        """Every deployment event of ``environment`` (newest first by default), lazily paged."""
        params = {"since": _instant(since), "until": _instant(until), "model": model,
                  "order": "asc" if oldest_first else "desc", "page_size": page_size}
        return self._pages(f"/api/v1/environments/{quote(environment)}/timeline", params,
                           DeploymentEvent.from_json, limit=limit)

    def version_deployments(self, model: str, number: int) -> list[ServingInterval]:
        """Where and when version ``model/number`` served, oldest first."""
        body = self._json("GET", f"/api/v1/models/{quote(model)}/versions/{int(number)}/deployments")
        return [ServingInterval.from_json(i) for i in body["items"]]

    def model_deployments(self, model: str, *, oldest_first: bool = False,
                          limit: int | None = None) -> Pager[DeploymentEvent]:
        """The deployment history of ``model`` across every environment."""
        return self._pages(f"/api/v1/models/{quote(model)}/deployments",
                           {"order": "asc" if oldest_first else "desc"},
                           DeploymentEvent.from_json, limit=limit)

    # ------------------------------------------------------------------ observed state

    def observe(self, environment: str, digest: str, *, at: datetime | str | None = None,
                instance: str = "") -> Observation:
        """Report that ``digest`` (a version digest) is serving in ``environment``."""
        body = {"environment": environment, "digest": digest, "at": _instant(at),
                "instance": instance}
        return Observation.from_json(
            self._json("POST", "/api/v1/observations", json=body, expected=(201,)))

    def drift(self, environment: str | None = None, *, window_seconds: int | None = None) -> DriftReport:
        """Recorded deployments against fresh observations (default window: one hour)."""
        return DriftReport.from_json(self._json(
            "GET", "/api/v1/drift", params={"environment": environment, "window": window_seconds}))
