"""Models, versions and aliases: every rule of the core registry.

Each mutating method is one transaction that writes its audit event alongside the change.
Methods take an :class:`~regista.domain.models.Actor` and raise
:mod:`regista.errors`, never HTTP errors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from regista.domain.models import Actor, Alias, FileEntry, FileRole, Model, Page, Version
from regista.domain.names import (
    VersionRef,
    normalize_name,
    validate_alias,
    validate_digest,
    validate_manifest_path,
    validate_name,
)
from regista.domain.provenance import Provenance, missing_fields
from regista.errors import Conflict, Invalid, MissingMetadata, NotFound
from regista.service import audit
from regista.service.access import Authorizer, Permission
from regista.service.clock import utcnow
from regista.service.hooks import GovernanceHooks
from regista.store.sql import registry as q
from regista.store.sql.engine import Database

MAX_TAGS = 100
MAX_TAG_KEY = 255
MAX_TAG_VALUE = 1024
MAX_FILES = 10_000
MAX_DESCRIPTION = 20_000
MAX_MEDIA_TYPE = 255
MAX_TEAM = 128
RISK_TIERS = ("low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class NewFile:
    """One manifest entry of a registration (the blob must already be stored)."""

    path: str
    digest: str
    size: int
    role: str = "other"
    media_type: str = "application/octet-stream"


def validate_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    if not tags:
        return {}
    if len(tags) > MAX_TAGS:
        raise Invalid(f"at most {MAX_TAGS} tags are allowed", details={"field": "tags"})
    out = {}
    for k, v in tags.items():
        if not isinstance(k, str) or not k or len(k) > MAX_TAG_KEY or not k.isprintable():
            raise Invalid(f"tag key {str(k)[:60]!r} must be 1..{MAX_TAG_KEY} printable characters",
                          details={"field": "tags"})
        if not isinstance(v, str) or len(v) > MAX_TAG_VALUE:
            raise Invalid(f"tag {k!r} must have a string value of at most {MAX_TAG_VALUE} "
                          "characters", details={"field": f"tags.{k}"})
        out[k] = v
    return out


def _validate_description(text: str | None) -> str:
    text = text or ""
    if len(text) > MAX_DESCRIPTION:
        raise Invalid(f"description is longer than {MAX_DESCRIPTION} characters",
                      details={"field": "description"})
    return text


def _validate_risk_tier(tier: str | None) -> str | None:
    if tier is not None and tier not in RISK_TIERS:
        raise Invalid(f"risk_tier must be one of {', '.join(RISK_TIERS)}",
                      details={"field": "risk_tier", "value": str(tier)[:40]})
    return tier


def _validate_team(team: str | None) -> str | None:
    if team is None or team == "":
        return None
    return validate_name(team, what="owner team")


def manifest_digest(files: Sequence[FileEntry]) -> str:
    """sha256 of the canonical manifest: entries sorted by path, compact sorted-key JSON."""
    items = [f.manifest_item() for f in sorted(files, key=lambda f: f.path)]
    return hashlib.sha256(orjson.dumps({"files": items}, option=orjson.OPT_SORT_KEYS)).hexdigest()


def provenance_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": "metadata." + ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
        for e in exc.errors()[:50]
    ]


class RegistryService:
    """Models, versions, aliases and files."""

    def __init__(
        self, db: Database, authz: Authorizer, hooks: GovernanceHooks, *, secret: bytes,
        page_default: int = 50, page_max: int = 500,
    ) -> None:
        self.db = db
        self.authz = authz
        self.hooks = hooks
        self.secret = secret
        self.page_default = page_default
        self.page_max = page_max

    # ------------------------------------------------------------------ models

    def create_model(
        self,
        actor: Actor,
        name: str,
        *,
        description: str = "",
        owner_team: str | None = None,
        risk_tier: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Model:
        validate_name(name)
        self.authz.require(actor, Permission.MODEL_CREATE, team=owner_team)
        values = self._new_model_values(actor, name, description, owner_team, risk_tier)
        tag_values = validate_tags(tags)
        try:
            with self.db.write() as conn:
                model = self._insert_model(conn, actor, values, tag_values)
        except IntegrityError:
            raise self._name_taken(name) from None
        return model

    def _new_model_values(
        self, actor: Actor, name: str, description: str, owner_team: str | None,
        risk_tier: str | None,
    ) -> dict[str, Any]:
        now = utcnow()
        tier = _validate_risk_tier(risk_tier)
        interval = self.hooks.review_interval(tier)
        return {
            "name": name,
            "normalized_name": normalize_name(name),
            "description": _validate_description(description),
            "owner_team": _validate_team(owner_team),
            "risk_tier": tier,
            "archived": False,
            "version_counter": 0,
            "next_review_at": now + interval if interval else None,
            "created_at": now,
            "created_by": actor.name,
            "updated_at": now,
        }

    def _insert_model(
        self, conn: Connection, actor: Actor, values: dict[str, Any], tags: dict[str, str]
    ) -> Model:
        if q.model_row(conn, values["normalized_name"]) is not None:
            raise self._name_taken(values["name"])
        model_id = q.insert_model(conn, values)
        if tags:
            q.replace_model_tags(conn, model_id, tags)
        audit.append(
            conn, actor, "model.create", at=values["created_at"],
            model=values["normalized_name"],
            after={k: values[k] for k in ("name", "description", "owner_team", "risk_tier")}
            | {"tags": tags},
        )
        return q.to_models(conn, q.model_rows_by_id(conn, [model_id]))[0]

    @staticmethod
    def _name_taken(name: str) -> Conflict:
        return Conflict(
            f"a model named {name!r} (or one that normalises to {normalize_name(name)!r}) "
            "already exists",
            details={"name": name, "normalized_name": normalize_name(name)},
        )

    def get_model(self, actor: Actor, name: str) -> Model:
        validate_name(name)
        with self.db.read() as conn:
            row = self._model_row(conn, name)
            self.authz.require(actor, Permission.MODEL_READ, model=row.normalized_name,
                               team=row.owner_team)
            return q.to_models(conn, [row])[0]

    def models_by_id(self, conn: Connection, ids: Sequence[int]) -> list[Model]:
        return q.to_models(conn, q.model_rows_by_id(conn, ids))

    def update_model(
        self,
        actor: Actor,
        name: str,
        *,
        description: str | None = None,
        owner_team: str | None = None,
        risk_tier: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Model:
        validate_name(name)
        with self.db.write() as conn:
            row = self._model_row(conn, name, for_update=True)
            self.authz.require(actor, Permission.MODEL_UPDATE, model=row.normalized_name,
                               team=row.owner_team)
            before: dict[str, Any] = {}
            after: dict[str, Any] = {}
            changes: dict[str, Any] = {}
            if description is not None and description != row.description:
                changes["description"] = _validate_description(description)
            if owner_team is not None and (owner_team or None) != row.owner_team:
                changes["owner_team"] = _validate_team(owner_team)
            if risk_tier is not None and risk_tier != row.risk_tier:
                changes["risk_tier"] = _validate_risk_tier(risk_tier)
                interval = self.hooks.review_interval(risk_tier)
                base = row.created_at
                changes["next_review_at"] = base + interval if interval else None
            for k, v in changes.items():
                before[k], after[k] = getattr(row, k), v
            if tags is not None:
                new_tags = validate_tags(tags)
                old_tags = q.tags_of_models(conn, [row.id]).get(row.id, {})
                if new_tags != old_tags:
                    q.replace_model_tags(conn, row.id, new_tags)
                    before["tags"], after["tags"] = old_tags, new_tags
            if after:
                now = utcnow()
                q.update_model(conn, row.id, {**changes, "updated_at": now})
                audit.append(conn, actor, "model.update", at=now, model=row.normalized_name,
                             before=before, after=after)
            return q.to_models(conn, q.model_rows_by_id(conn, [row.id]))[0]

    def archive_model(self, actor: Actor, name: str) -> Model:
        validate_name(name)
        with self.db.write() as conn:
            row = self._model_row(conn, name, for_update=True)
            self.authz.require(actor, Permission.MODEL_ARCHIVE, model=row.normalized_name,
                               team=row.owner_team)
            if not row.archived:
                now = utcnow()
                q.update_model(conn, row.id, {"archived": True, "archived_at": now,
                                              "updated_at": now})
                audit.append(conn, actor, "model.archive", at=now, model=row.normalized_name,
                             before={"archived": False}, after={"archived": True})
            return q.to_models(conn, q.model_rows_by_id(conn, [row.id]))[0]

    def _model_row(self, conn: Connection, name: str, *, for_update: bool = False) -> Any:
        row = q.model_row(conn, normalize_name(name), for_update=for_update)
        if row is None:
            raise NotFound(f"model {name!r} not found", details={"model": name})
        return row

    # ------------------------------------------------------------------ versions

    def register_version(
        self,
        actor: Actor,
        model: str,
        *,
        files: Sequence[NewFile],
        metadata: Mapping[str, Any] | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        aliases: Sequence[str] = (),
        idempotency_key: str | None = None,
        create_model: bool = False,
        _retry: bool = False,
    ) -> tuple[Version, bool]:
        """Seal a new version atomically. Returns (version, created).

        The number is allocated inside the same transaction that makes the version
        visible, so an abandoned registration leaves no gap. With an idempotency key, a
        retry of the same request returns the first version (created=False).
        """
        validate_name(model)
        entries = self._validate_files(files)
        prov = self._validate_provenance(metadata)
        tag_values = validate_tags(tags)
        alias_names = [validate_alias(a) for a in aliases]
        if len(alias_names) > 20:
            raise Invalid("at most 20 aliases per registration", details={"field": "aliases"})
        desc = _validate_description(description)
        if idempotency_key is not None and (
            not idempotency_key or len(idempotency_key) > 128 or not idempotency_key.isprintable()
        ):
            raise Invalid("idempotency key must be 1..128 printable characters",
                          details={"field": "idempotency_key"})
        missing = missing_fields(prov, self.hooks.required_metadata("registered"))
        if missing:
            raise MissingMetadata(missing)
        digest = manifest_digest(entries)
        request_hash = hashlib.sha256(
            orjson.dumps([digest, prov, tag_values, desc, alias_names], option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
        metrics = prov.get("metrics") or {}
        protected = self.hooks.protected_aliases()
        try:
            with self.db.write() as conn:
                row = q.model_for_write(conn, normalize_name(model))
                if row is None:
                    if not create_model:
                        raise NotFound(f"model {model!r} not found (pass create_model to "
                                       "create it)", details={"model": model})
                    self.authz.require(actor, Permission.MODEL_CREATE)
                    self._insert_model(conn, actor,
                                       self._new_model_values(actor, model, "", None, None), {})
                    row = q.model_for_write(conn, normalize_name(model))
                    assert row is not None
                self.authz.require(actor, Permission.VERSION_REGISTER, model=row.normalized_name,
                                   team=row.owner_team)
                for a in alias_names:
                    if a in protected:
                        self.authz.require(actor, Permission.ALIAS_SET_PROTECTED,
                                           model=row.normalized_name, team=row.owner_team)
                if row.archived:
                    raise Conflict(f"model {row.name!r} is archived", details={"model": row.name})
                if idempotency_key is not None:
                    prior = q.version_by_idempotency_key(conn, row.id, idempotency_key)
                    if prior is not None:
                        if prior.request_hash != request_hash:
                            raise Conflict(
                                "idempotency key was already used for a different registration",
                                details={"idempotency_key": idempotency_key},
                            )
                        return q.load_versions(conn, [prior.id])[0], False
                self._check_blobs(conn, entries)
                parent_id = self._resolve_parent(conn, row, prov.get("parent_version"))
                now = utcnow()
                vid, number, head = q.insert_numbered_version(
                    conn, row.id, now,
                    {
                        "model_id": row.id, "digest": digest,
                        "description": desc, "stage": "registered", "stage_changed_at": now,
                        "provenance": prov, "framework": prov.get("framework"),
                        "parent_version_id": parent_id, "file_count": len(entries),
                        "total_size": sum(f.size for f in entries),
                        "idempotency_key": idempotency_key, "request_hash": request_hash,
                        "created_at": now, "created_by": actor.name, "updated_at": now,
                    },
                    entries, tag_values, metrics,
                )
                audit.append(
                    conn, actor, "version.register", at=now, model=row.normalized_name,
                    version=number, locked_head=head,
                    after={"digest": digest, "files": len(entries),
                           "size": sum(f.size for f in entries), "tags": tag_values},
                )
                for a in alias_names:
                    self._move_alias(conn, actor, row, a, vid, number, now)
                if parent_id is not None:
                    return q.load_versions(conn, [vid])[0], True
                # Everything is known here: no need to read back what was just written.
                return Version(
                    id=vid, model=row.name, number=number, digest=digest, description=desc,
                    stage="registered", stage_changed_at=now, provenance=prov,
                    tags=tag_values, aliases=sorted(set(alias_names)),
                    files=sorted(entries, key=lambda f: f.path), file_count=len(entries),
                    total_size=sum(f.size for f in entries), parent=None, created_at=now,
                    created_by=actor.name, updated_at=now,
                ), True
        except IntegrityError as exc:
            # Two registrations racing to create the same model, or on one idempotency key:
            # the loser retries once and finds the winner's model or version.
            text = str(exc.orig).lower()
            racing = "normalized_name" in text or (
                idempotency_key is not None and "idempotency" in text)
            if racing and not _retry:
                return self.register_version(
                    actor, model, files=files, metadata=metadata, description=description,
                    tags=tags, aliases=aliases, idempotency_key=idempotency_key,
                    create_model=create_model, _retry=True,
                )
            raise Conflict("a concurrent change conflicted with this registration; retry",
                           details={"model": model}) from None

    def _validate_files(self, files: Sequence[NewFile]) -> list[FileEntry]:
        if not files:
            raise Invalid("a version needs at least one file", details={"field": "files"})
        if len(files) > MAX_FILES:
            raise Invalid(f"at most {MAX_FILES} files per version", details={"field": "files"})
        seen: set[str] = set()
        out = []
        for f in files:
            path = validate_manifest_path(f.path)
            if path in seen or path.lower() in seen:
                raise Invalid(f"file path {path!r} appears twice (paths are case-insensitive "
                              "unique)", details={"field": "path", "value": path})
            seen.add(path)
            seen.add(path.lower())
            validate_digest(f.digest)
            if not isinstance(f.size, int) or f.size < 0:
                raise Invalid(f"size of {path!r} must be a non-negative integer",
                              details={"field": "size", "path": path})
            try:
                role = FileRole(f.role)
            except ValueError:
                raise Invalid(
                    f"role {str(f.role)[:40]!r} of {path!r} must be one of "
                    + ", ".join(r.value for r in FileRole),
                    details={"field": "role", "path": path},
                ) from None
            mt = f.media_type or "application/octet-stream"
            if len(mt) > MAX_MEDIA_TYPE or not mt.isascii() or not mt.isprintable() or "/" not in mt:
                raise Invalid(f"media type of {path!r} is not valid",
                              details={"field": "media_type", "path": path})
            out.append(FileEntry(path=path, digest=f.digest, size=f.size, media_type=mt,
                                 role=role))
        return out

    @staticmethod
    def _validate_provenance(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
        try:
            return Provenance.model_validate(dict(metadata or {})).to_json()
        except ValidationError as exc:
            raise Invalid("metadata is not valid provenance",
                          details={"errors": provenance_errors(exc)}) from None

    @staticmethod
    def _check_blobs(conn: Connection, entries: Sequence[FileEntry]) -> None:
        known = q.known_blobs(conn, (f.digest for f in entries), lock=True)  # vs hygiene GC
        missing = [f.path for f in entries if f.digest not in known]
        if missing:
            raise Conflict(
                "files must be uploaded before they are registered",
                details={"missing_blobs": [
                    {"path": f.path, "sha256": f.digest} for f in entries if f.digest not in known
                ][:100]},
            )
        wrong = [f.path for f in entries if known[f.digest] != f.size]
        if wrong:
            raise Invalid("declared size differs from the stored blob's size",
                          details={"paths": wrong[:100]})

    def _resolve_parent(self, conn: Connection, row: Any, parent: str | None) -> int | None:
        if not parent:
            return None
        ref = VersionRef(model=row.name, number=int(parent)) if parent.isdigit() else None
        try:
            ref = ref or VersionRef.parse(parent)
        except Invalid:
            raise Invalid(f"parent_version {parent!r} is not a version reference",
                          details={"field": "metadata.parent_version"}) from None
        try:
            return self._resolve_id(conn, ref)
        except NotFound:
            raise Invalid(f"parent_version {parent!r} does not exist",
                          details={"field": "metadata.parent_version"}) from None

    def _resolve_id(self, conn: Connection, ref: VersionRef, as_of: datetime | None = None) -> int:
        row = self._model_row(conn, ref.model)
        vid: int | None
        if ref.number is not None:
            vid = q.version_id_by_number(conn, row.id, ref.number)
        elif ref.alias == "latest":
            vid = q.latest_version_id(conn, row.id)
            if as_of is not None:
                raise Invalid("'latest' cannot be read as of a time; use a number or an alias")
        elif as_of is not None:
            vid = q.alias_target_as_of(conn, row.id, ref.alias or "", as_of)
        else:
            vid = q.alias_target(conn, row.id, ref.alias or "")
        if vid is None:
            raise NotFound(f"version {ref} not found", details={"ref": str(ref)})
        return vid

    def resolve(self, conn: Connection, ref: str | VersionRef, as_of: datetime | None = None) -> int:
        """The id of the version a reference names (``name/7``, ``name@alias``)."""
        parsed = ref if isinstance(ref, VersionRef) else VersionRef.parse(ref)
        return self._resolve_id(conn, parsed, as_of)

    def get_version(self, actor: Actor, ref: str, *, as_of: datetime | None = None) -> Version:
        with self.db.read() as conn:
            vid = self.resolve(conn, ref, as_of)
            version = q.load_versions(conn, [vid])[0]
            self.authz.require(actor, Permission.MODEL_READ, model=normalize_name(version.model))
            return version

    def children(self, actor: Actor, ref: str) -> list[str]:
        with self.db.read() as conn:
            vid = self.resolve(conn, ref)
            return q.children_of_version(conn, vid)

    def update_version(
        self,
        actor: Actor,
        ref: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Version:
        """Edit what stays editable after sealing: description and tags (audited)."""
        with self.db.write() as conn:
            vid = self.resolve(conn, ref)
            version = q.load_versions(conn, [vid], with_files=False)[0]
            self.authz.require(actor, Permission.VERSION_UPDATE,
                               model=normalize_name(version.model))
            before: dict[str, Any] = {}
            after: dict[str, Any] = {}
            now = utcnow()
            if description is not None and description != version.description:
                before["description"] = version.description
                after["description"] = _validate_description(description)
                q.update_version(conn, vid, {"description": after["description"],
                                             "updated_at": now})
            if tags is not None:
                new_tags = validate_tags(tags)
                if new_tags != version.tags:
                    q.replace_version_tags(conn, vid, new_tags)
                    q.update_version(conn, vid, {"updated_at": now})
                    before["tags"], after["tags"] = version.tags, new_tags
            if after:
                audit.append(conn, actor, "version.update", at=now,
                             model=normalize_name(version.model), version=version.number,
                             before=before, after=after)
            return q.load_versions(conn, [vid])[0]

    def file_entry(self, actor: Actor, ref: str, path: str) -> tuple[Version, FileEntry]:
        validate_manifest_path(path)
        with self.db.read() as conn:
            vid = self.resolve(conn, ref)
            version = q.load_versions(conn, [vid], with_files=False)[0]
            self.authz.require(actor, Permission.MODEL_READ, model=normalize_name(version.model))
            entry = q.file_of_version(conn, vid, path)
            if entry is None:
                raise NotFound(f"version {version.ref} has no file {path!r}",
                               details={"path": path})
            return version, entry

    # ------------------------------------------------------------------ aliases

    def set_alias(self, actor: Actor, model: str, alias: str, number: int) -> Alias:
        validate_name(model)
        validate_alias(alias)
        with self.db.write() as conn:
            row = self._model_row(conn, model, for_update=True)
            self._require_alias(actor, row, alias)
            vid = q.version_id_by_number(conn, row.id, number)
            if vid is None:
                raise NotFound(f"version {row.name}/{number} not found",
                               details={"ref": f"{row.name}/{number}"})
            now = utcnow()
            self._move_alias(conn, actor, row, alias, vid, number, now)
            return Alias(model=row.name, name=alias, version=number, at=now, actor=actor.name)

    def delete_alias(self, actor: Actor, model: str, alias: str) -> None:
        validate_name(model)
        validate_alias(alias)
        with self.db.write() as conn:
            row = self._model_row(conn, model, for_update=True)
            self._require_alias(actor, row, alias)
            current = q.alias_target(conn, row.id, alias)
            if current is None:
                raise NotFound(f"model {row.name!r} has no alias {alias!r}",
                               details={"alias": alias})
            self._move_alias(conn, actor, row, alias, None, None, utcnow())

    def _require_alias(self, actor: Actor, row: Any, alias: str) -> None:
        self.authz.require(actor, Permission.ALIAS_SET, model=row.normalized_name,
                           team=row.owner_team)
        if alias in self.hooks.protected_aliases():
            self.authz.require(actor, Permission.ALIAS_SET_PROTECTED, model=row.normalized_name,
                               team=row.owner_team)

    def _move_alias(
        self, conn: Connection, actor: Actor, row: Any, alias: str, vid: int | None,
        number: int | None, now: datetime,
    ) -> None:
        prev = q.alias_target(conn, row.id, alias)
        prev_number = None
        if prev is not None:
            prev_number = q.load_versions(conn, [prev], with_files=False)[0].number
        if prev == vid:
            return
        q.set_alias(conn, row.id, alias, vid, now, actor.name)
        audit.append(
            conn, actor, "alias.set" if vid is not None else "alias.delete", at=now,
            model=row.normalized_name, version=number, target=alias,
            before={"version": prev_number}, after={"version": number},
        )

    def alias_history(self, actor: Actor, model: str, alias: str | None = None,
                      limit: int = 100) -> list[Alias]:
        validate_name(model)
        with self.db.read() as conn:
            row = self._model_row(conn, model)
            self.authz.require(actor, Permission.MODEL_READ, model=row.normalized_name)
            return q.alias_history(conn, row.id, alias, max(1, min(limit, 1000)))


    # ------------------------------------------------------------------ search

    def _page_size(self, page_size: int | None, default: int) -> int:
        return default if page_size is None else page_size

    def search_models(
        self, actor: Actor, *, filter: str | None = None, order_by: str | None = None,
        page_size: int | None = None, cursor: str | None = None,
    ) -> Page[Model]:
        """Models matching a filter, one keyset page at a time."""
        from regista.service import search

        self.authz.require(actor, Permission.MODEL_READ)
        with self.db.read() as conn:
            ids, next_cursor = search.search_models(
                conn, filter=filter, order_by=order_by,
                page_size=self._page_size(page_size, self.page_default),
                cursor=cursor, secret=self.secret, max_page_size=self.page_max,
            )
            return Page(items=self.models_by_id(conn, ids), next_cursor=next_cursor)

    def search_versions(
        self, actor: Actor, *, filter: str | None = None, order_by: str | None = None,
        page_size: int | None = None, cursor: str | None = None, model: str | None = None,
        with_files: bool = False,
    ) -> Page[Version]:
        """Versions matching a filter (optionally of one model), one keyset page at a time."""
        from regista.service import search

        with self.db.read() as conn:
            model_id = None
            if model is not None:
                validate_name(model)
                row = self._model_row(conn, model)
                self.authz.require(actor, Permission.MODEL_READ, model=row.normalized_name,
                                   team=row.owner_team)
                model_id = row.id
            else:
                self.authz.require(actor, Permission.MODEL_READ)
            ids, next_cursor = search.search_versions(
                conn, filter=filter, order_by=order_by,
                page_size=self._page_size(page_size, self.page_default),
                cursor=cursor, secret=self.secret, max_page_size=self.page_max,
                model_id=model_id,
            )
            return Page(items=q.load_versions(conn, ids, with_files=with_files),
                        next_cursor=next_cursor)
