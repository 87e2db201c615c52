"""Models, versions, aliases, registration and download: the core registry API."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from regista.client._base import Pager, quote, quote_path
from regista.client._transfer import (
    LocalFile,
    TransferMixin,
    default_idempotency_key,
    hash_file,
    load_metadata,
    make_progress,
    manifest_digest,
    media_type_for,
    run_parallel,
    safe_target,
    scan,
)
from regista.client.types import AliasEvent, FileInfo, Model, ServerInfo, Version
from regista.domain.names import VersionRef
from regista.errors import NotFound, RegistryError

#: Page size used when the caller asks for at most ``limit`` items.
_LIMIT_PAGE = 100


def _instant(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


def _page_size(page_size: int | None, limit: int | None) -> int | None:
    if page_size is None and limit is not None:
        return max(1, min(limit, _LIMIT_PAGE))
    return page_size


class RegistryMixin(TransferMixin):
    """The core registry: models, versions, aliases, files."""

    # ------------------------------------------------------------------ server

    def info(self) -> ServerInfo:
        """What the server runs on (version, database, blob store, auth mode)."""
        return ServerInfo.from_json(self._json("GET", "/api/v1/info"))

    def health(self) -> bool:
        """True if the server answers its liveness check."""
        return bool(self._json("GET", "/api/v1/health").get("status") == "ok")

    # ------------------------------------------------------------------ models

    def create_model(
        self,
        name: str,
        *,
        description: str = "",
        owner_team: str | None = None,
        risk_tier: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Model:
        """Create a model; :class:`~regista.errors.Conflict` if the name (normalised) is taken."""
        body = {"name": name, "description": description, "owner_team": owner_team,
                "risk_tier": risk_tier, "tags": dict(tags or {})}
        return Model.from_json(self._json("POST", "/api/v1/models", json=body, expected=(201,)))

    def get_model(self, name: str) -> Model:
        """One model by name (any spelling with the same normal form)."""
        return Model.from_json(self._json("GET", f"/api/v1/models/{quote(name)}"))

    def list_models(
        self,
        filter: str | None = None,
        *,
        order_by: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
    ) -> Pager[Model]:
        """Models (optionally matching a filter), as a lazy pager over every page.

        The first page is fetched now, so a bad filter raises here; later pages are fetched
        as the iteration reaches them. ``limit`` stops after that many models.
        """
        params = {"filter": filter, "order_by": order_by, "page_size": _page_size(page_size, limit)}
        return self._pages("/api/v1/models", params, Model.from_json, limit=limit)

    def search_models(
        self,
        filter: str,
        *,
        order_by: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
    ) -> Pager[Model]:
        """Models matching ``filter`` (e.g. ``tags.team = "risk" AND name ~ "fraud"``)."""
        return self.list_models(filter, order_by=order_by, page_size=page_size, limit=limit)

    def update_model(
        self,
        name: str,
        *,
        description: str | None = None,
        owner_team: str | None = None,
        risk_tier: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Model:
        """Change the given fields (``tags`` replaces the whole tag set); others are kept."""
        body: dict[str, Any] = {}
        if description is not None:
            body["description"] = description
        if owner_team is not None:
            body["owner_team"] = owner_team
        if risk_tier is not None:
            body["risk_tier"] = risk_tier
        if tags is not None:
            body["tags"] = dict(tags)
        return Model.from_json(self._json("PATCH", f"/api/v1/models/{quote(name)}", json=body))

    def archive_model(self, name: str) -> Model:
        """Archive a model: it keeps its versions but accepts no new ones."""
        return Model.from_json(self._json("POST", f"/api/v1/models/{quote(name)}/archive"))

    # ------------------------------------------------------------------ versions

    def get_version(self, ref: str, version: int | None = None, *,
                    as_of: datetime | str | None = None) -> Version:
        """A version by reference: ``NAME/7``, ``NAME@alias``, ``NAME@latest`` (or ``NAME``).

        ``get_version("m", 7)`` is ``get_version("m/7")``. ``as_of`` reads aliases as they
        pointed at that instant.
        """
        if version is not None:
            ref = f"{ref}/{version}"
        params = {"ref": ref, "as_of": _instant(as_of)}
        return Version.from_json(self._json("GET", "/api/v1/resolve", params=params))

    def list_versions(
        self,
        model: str,
        filter: str | None = None,
        *,
        order_by: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
    ) -> Pager[Version]:
        """Versions of one model, newest first unless ``order_by`` says otherwise (lazy pager).

        Listed versions carry no file manifest (``files`` is empty); use :meth:`get_version`.
        """
        params = {"filter": filter, "order_by": order_by, "page_size": _page_size(page_size, limit)}
        return self._pages(f"/api/v1/models/{quote(model)}/versions", params, Version.from_json,
                           limit=limit)

    def search_versions(
        self,
        filter: str,
        *,
        order_by: str | None = None,
        page_size: int | None = None,
        limit: int | None = None,
    ) -> Pager[Version]:
        """Versions of all models matching ``filter`` (e.g. ``metrics.auc > 0.9``), lazily."""
        params = {"filter": filter, "order_by": order_by, "page_size": _page_size(page_size, limit)}
        return self._pages("/api/v1/versions", params, Version.from_json, limit=limit)

    def _numbered(self, ref: str) -> tuple[str, int]:
        """(model, number) of a reference, resolving an alias through the server."""
        parsed = VersionRef.parse(ref)
        if parsed.number is not None:
            return parsed.model, parsed.number
        v = self.get_version(ref)
        return v.model, v.version

    def update_version(
        self,
        ref: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Version:
        """Edit a version's description or tags (``tags`` replaces the set); files are frozen."""
        model, number = self._numbered(ref)
        body: dict[str, Any] = {}
        if description is not None:
            body["description"] = description
        if tags is not None:
            body["tags"] = dict(tags)
        return Version.from_json(
            self._json("PATCH", f"/api/v1/models/{quote(model)}/versions/{number}", json=body))

    # ------------------------------------------------------------------ aliases

    def set_alias(self, model: str, alias: str, version: int) -> AliasEvent:
        """Point ``alias`` at version number ``version`` (the move is kept in the history)."""
        return AliasEvent.from_json(self._json(
            "PUT", f"/api/v1/models/{quote(model)}/aliases/{quote(alias)}", json={"version": version}))

    def delete_alias(self, model: str, alias: str) -> None:
        """Remove an alias (its history stays readable)."""
        self._request("DELETE", f"/api/v1/models/{quote(model)}/aliases/{quote(alias)}",
                      expected=(204,))

    def get_alias(self, model: str, alias: str, *, as_of: datetime | str | None = None) -> Version:
        """The version an alias points at now, or at the instant ``as_of``."""
        return Version.from_json(self._json(
            "GET", f"/api/v1/models/{quote(model)}/aliases/{quote(alias)}",
            params={"as_of": _instant(as_of)}))

    def alias_history(self, model: str, alias: str | None = None, *, limit: int = 100) -> list[AliasEvent]:
        """Every move of the model's aliases (or of one alias), newest first."""
        body = self._json("GET", f"/api/v1/models/{quote(model)}/alias-history",
                          params={"alias": alias, "limit": limit})
        return [AliasEvent.from_json(a) for a in body["items"]]

    # ------------------------------------------------------------------ register

    def register(
        self,
        model: str,
        path: str | os.PathLike[str],
        *,
        metadata: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        tags: Mapping[str, str] | None = None,
        aliases: Sequence[str] = (),
        description: str = "",
        idempotency_key: str | None = None,
        create_model: bool = False,
        roles: Mapping[str, str] | None = None,
        progress: bool = True,
    ) -> Version:
        """Register a file or directory as the next version of ``model``, in one atomic call.

        1. Every file is hashed (sha256, streamed) and given a role — from ``roles``
           (manifest path or glob → role) or detected from its name (see
           :func:`regista.client._transfer.scan`).
        2. The registry is asked which blobs it already holds; only the others are uploaded,
           four at a time (resumable for files over 64 MiB), with a progress bar on a
           terminal unless ``progress=False``.
        3. One ``POST /api/v1/models/{model}/versions`` seals the version with its manifest,
           ``metadata`` (a mapping, or the path of a JSON/YAML file), tags, aliases and
           description.

        ``idempotency_key`` defaults to a hash of everything the call says (manifest,
        metadata, tags, aliases, description), so retrying the same call returns the same
        version instead of registering another. Errors are the server's classes, e.g.
        :class:`~regista.errors.MissingMetadata` (``.missing`` lists the fields).
        """
        meta = load_metadata(metadata)
        found = scan(Path(path), roles)
        bar = make_progress(progress)
        try:
            total = sum(src.stat().st_size for _, src, _ in found)
            bar.start("hashing", total)

            def hashed(item: tuple[str, Path, str]) -> LocalFile:
                rel, src, role = item
                digest, size = hash_file(src, bar.advance)
                return LocalFile(path=rel, source=src, size=size, sha256=digest, role=role,
                                 media_type=media_type_for(rel))

            files: list[LocalFile] = run_parallel(hashed, found)
            present = {b.sha256 for b in self.check_blobs([f.sha256 for f in files]) if b.present}
            todo = list({f.sha256: f for f in files if f.sha256 not in present}.values())
            bar.start("uploading", sum(f.size for f in todo))
            run_parallel(lambda f: self.upload_file(f.source, sha256=f.sha256, size=f.size,
                                                    progress=bar), todo)
        finally:
            bar.stop()
        manifest = [f.manifest_entry() for f in files]
        body: dict[str, Any] = {
            "files": [m.to_json() for m in manifest],
            "metadata": meta,
            "description": description,
            "tags": dict(tags or {}),
            "aliases": list(aliases),
            "create_model": create_model,
        }
        digest = manifest_digest(manifest)
        body["idempotency_key"] = idempotency_key or default_idempotency_key(
            model, digest, {k: body[k] for k in ("metadata", "description", "tags", "aliases")})
        version = Version.from_json(self._json(
            "POST", f"/api/v1/models/{quote(model)}/versions", json=body, expected=(200, 201)))
        if version.digest != digest:
            raise RegistryError(
                f"the server sealed {version.ref} with digest {version.digest}, but the files "
                f"sent have manifest digest {digest}",
                details={"expected": digest, "actual": version.digest, "ref": version.ref},
            )
        return version

    # ------------------------------------------------------------------ download

    def pull(
        self,
        ref: str,
        dest: str | os.PathLike[str],
        *,
        progress: bool = True,
    ) -> Version:
        """Download every file of a version into ``dest``, each verified against its sha256.

        Each file is streamed to a temporary file beside its destination, checked, then
        renamed into place, so a file at its final path is always a verified one. A file
        already present with the right digest is not downloaded again; an interrupted
        download resumes (``Range``). A digest mismatch raises
        :class:`~regista.errors.DigestMismatch` and leaves nothing at that file's path.
        Manifest paths that would land outside ``dest`` are refused.
        """
        version = self.get_version(ref)
        root = Path(dest)
        root.mkdir(parents=True, exist_ok=True)
        targets = [(f, safe_target(root, f.path)) for f in version.files]
        base = f"/api/v1/models/{quote(version.model)}/versions/{version.version}/files/"
        bar = make_progress(progress)
        try:
            bar.start(f"pulling {version.ref}", version.total_size)
            run_parallel(lambda ft: self._download(base + quote_path(ft[0].path), ft[0], ft[1], bar),
                         targets)
        finally:
            bar.stop()
        return version

    def download_file(
        self,
        ref: str,
        path: str,
        dest: str | os.PathLike[str],
        *,
        progress: bool = False,
    ) -> Path:
        """Download one file of a version, verified; return where it was written.

        ``dest`` is the file to write, or an existing directory to write it into (under the
        file's base name).
        """
        version = self.get_version(ref)
        entry = _entry(version, path)
        target = Path(dest)
        if target.is_dir():
            target = target / Path(entry.path).name
        url = (f"/api/v1/models/{quote(version.model)}/versions/{version.version}/files/"
               f"{quote_path(entry.path)}")
        bar = make_progress(progress)
        try:
            bar.start(f"downloading {entry.path}", entry.size)
            self._download(url, entry, target.absolute(), bar)
        finally:
            bar.stop()
        return target



def _entry(version: Version, path: str) -> FileInfo:
    for f in version.files:
        if f.path == path:
            return f
    raise NotFound(f"{version.ref} has no file {path!r}", details={"ref": version.ref, "path": path})

