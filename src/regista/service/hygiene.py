"""Registry hygiene: what is left over, what is stale, and cleaning it up safely.

Three jobs, each one service call:

- :meth:`HygieneService.report` — the hygiene debt, from aggregate and indexed queries:
  orphaned blobs (stored, named by no version), stale resumable uploads, superseded
  versions nobody archived, versions whose files are unverified, and the failures the
  last blob verification found.
- :meth:`HygieneService.collect_garbage` — delete orphaned blobs older than a grace period
  and stale uploads. The blob's *row* goes first, in a transaction whose ``DELETE``
  re-checks that no version references it; the bytes go after the commit. On PostgreSQL
  the rows are locked ``FOR UPDATE SKIP LOCKED`` first, and a registration locks the
  blobs it names ``FOR KEY SHARE`` while it checks them, so the two exclude each other:
  a blob being registered is skipped, and a registration that comes second finds the
  blob gone and is refused with 409 (upload it again). SQLite serialises writers.
- :meth:`HygieneService.verify_blobs` — re-hash stored blobs; stamp ``blobs.verified_at``
  on success, clear it on failure, and record the failures (with the versions that
  reference them) in the ``hygiene.verify`` audit event. There is no failure column:
  :meth:`report` reads the failure list of the latest ``hygiene.verify`` event, keeping
  the digests that are still unverified. Each event carries forward earlier failures
  its run did not re-check, so the latest event is always the whole list.

See ``docs/hygiene.md`` for the safety argument and a suggested schedule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from regista.config import Settings
from regista.domain.models import Actor
from regista.errors import Conflict, Invalid, NotFound, RegistryError
from regista.service import audit
from regista.service.access import Authorizer, Permission
from regista.service.clock import utcnow
from regista.service.policy import PolicyService
from regista.store.blobs.base import BlobStore
from regista.store.sql import hygiene as hq
from regista.store.sql.engine import Database

log = logging.getLogger("regista.hygiene")

DEFAULT_GRACE_SECONDS = 86_400
#: A blob not re-hashed for this long counts as unverified in the report.
DEFAULT_VERIFY_WINDOW = timedelta(days=30)
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
#: One garbage collection handles at most this many blobs and uploads (``truncated`` says
#: there is more: run again). Bounds the transaction and the HTTP call.
MAX_GC_ITEMS = 10_000
#: Failures kept in one ``hygiene.verify`` event, and versions named per failing blob.
MAX_FAILURES_RECORDED = 500
MAX_REFS_PER_BLOB = 20
#: Digests listed in a ``hygiene.gc`` event (the counts are always exact).
MAX_DIGESTS_AUDITED = 100
GC_ACTION = "hygiene.gc"
GC_REPAIR_ACTION = "hygiene.gc.repair"
VERIFY_ACTION = "hygiene.verify"
MISSING = "missing"
CORRUPT = "corrupt"

_DEFAULT_STAGES = ("registered", "staging", "production", "archived")
_DEFAULT_ARCHIVE = "archived"


def _iso(ts: datetime | None) -> str | None:
    return audit.iso(ts) if ts is not None else None


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class BlobItem:
    digest: str
    size: int
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "size": self.size, "created_at": _iso(self.created_at)}


@dataclass(frozen=True, slots=True)
class UploadItem:
    id: str
    digest: str
    size: int
    created_at: datetime
    created_by: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "digest": self.digest, "size": self.size,
                "created_at": _iso(self.created_at), "created_by": self.created_by}


@dataclass(frozen=True, slots=True)
class ModelCount:
    """How many versions of one model are in a debt category."""

    model: str
    count: int

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "count": self.count}


@dataclass(frozen=True, slots=True)
class SupersededItem:
    model: str
    version: int
    stage: str
    newest_production: int

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "ref": f"{self.model}/{self.version}",
                "stage": self.stage, "newest_production": self.newest_production}


@dataclass(frozen=True, slots=True)
class UnverifiedItem:
    model: str
    version: int
    path: str
    digest: str
    verified_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "ref": f"{self.model}/{self.version}",
                "path": self.path, "digest": self.digest, "verified_at": _iso(self.verified_at)}


@dataclass(frozen=True, slots=True)
class BlobFailure:
    """A blob whose bytes are gone (``missing``) or no longer hash to its digest (``corrupt``)."""

    digest: str
    problem: str
    versions: tuple[dict[str, Any], ...] = ()  # {"model", "version", "path"}

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "problem": self.problem, "versions": list(self.versions)}

    @classmethod
    def from_json(cls, d: Any) -> BlobFailure | None:
        """From an audit event's ``after``; None for anything malformed (never trust old rows)."""
        if not isinstance(d, dict) or not isinstance(d.get("digest"), str):
            return None
        refs = d.get("versions")
        refs = tuple(r for r in refs if isinstance(r, dict)) if isinstance(refs, list) else ()
        return cls(digest=d["digest"], problem=str(d.get("problem", "")), versions=refs)


@dataclass(frozen=True, slots=True)
class OrphanedBlobs:
    count: int
    bytes: int
    oldest_created_at: datetime | None
    items: list[BlobItem]

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "bytes": self.bytes,
                "oldest_created_at": _iso(self.oldest_created_at),
                "items": [i.to_json() for i in self.items]}


@dataclass(frozen=True, slots=True)
class StaleUploads:
    count: int
    bytes: int  # declared sizes
    expiry_seconds: int
    items: list[UploadItem]

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "bytes": self.bytes, "expiry_seconds": self.expiry_seconds,
                "items": [i.to_json() for i in self.items]}


@dataclass(frozen=True, slots=True)
class SupersededVersions:
    count: int
    production_stage: str
    by_model: list[ModelCount]
    items: list[SupersededItem]

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "production_stage": self.production_stage,
                "by_model": [m.to_json() for m in self.by_model],
                "items": [i.to_json() for i in self.items]}


@dataclass(frozen=True, slots=True)
class UnverifiedVersions:
    count: int
    blobs: int
    window_seconds: int
    by_model: list[ModelCount]
    items: list[UnverifiedItem]

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "blobs": self.blobs, "window_seconds": self.window_seconds,
                "by_model": [m.to_json() for m in self.by_model],
                "items": [i.to_json() for i in self.items]}


@dataclass(frozen=True, slots=True)
class VerificationFailures:
    """Failures of the latest verification run still unresolved (``checked_at`` None: never run)."""

    checked_at: datetime | None
    audit_seq: int | None
    items: list[BlobFailure]

    def to_json(self) -> dict[str, Any]:
        return {"count": len(self.items), "checked_at": _iso(self.checked_at),
                "audit_seq": self.audit_seq, "items": [i.to_json() for i in self.items]}


@dataclass(frozen=True, slots=True)
class HygieneReport:
    generated_at: datetime
    orphaned_blobs: OrphanedBlobs
    stale_uploads: StaleUploads
    superseded_versions: SupersededVersions
    unverified_versions: UnverifiedVersions
    verification_failures: VerificationFailures

    def to_json(self) -> dict[str, Any]:
        return {
            "generated_at": _iso(self.generated_at),
            "orphaned_blobs": self.orphaned_blobs.to_json(),
            "stale_uploads": self.stale_uploads.to_json(),
            "superseded_versions": self.superseded_versions.to_json(),
            "unverified_versions": self.unverified_versions.to_json(),
            "verification_failures": self.verification_failures.to_json(),
        }


@dataclass(frozen=True, slots=True)
class GCResult:
    """What a garbage collection removed (or, with ``dry_run``, would remove).

    ``skipped``: candidates a concurrent registration held or referenced meanwhile (kept).
    ``upload_files``: store-side uploads no database row names (a crash after
    ``upload_start``). ``staging_files`` is None on a dry run (not counted). ``repaired``:
    blobs re-recorded by a concurrent upload while their bytes were being deleted (their
    rows were removed again, or flagged unverified if already referenced).
    """

    dry_run: bool
    grace_seconds: int
    blobs: int
    bytes_freed: int
    digests: list[str]
    uploads: int
    upload_bytes: int
    upload_files: int
    staging_files: int | None
    skipped: int
    truncated: bool
    repaired: list[str] = field(default_factory=list)
    audit_seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "grace_seconds": self.grace_seconds, "blobs": self.blobs,
                "bytes_freed": self.bytes_freed, "digests": self.digests, "uploads": self.uploads,
                "upload_bytes": self.upload_bytes, "upload_files": self.upload_files,
                "staging_files": self.staging_files, "skipped": self.skipped,
                "truncated": self.truncated, "repaired": self.repaired,
                "audit_seq": self.audit_seq}


@dataclass(frozen=True, slots=True)
class BlobVerification:
    """The outcome of :meth:`HygieneService.verify_blobs`.

    ``errors``: blobs that could not be read for another reason (the backend was
    unavailable); they are neither stamped nor counted as failures.
    """

    checked: int
    ok: int
    missing: list[BlobFailure]
    corrupt: list[BlobFailure]
    errors: int
    audit_seq: int

    @property
    def failed(self) -> bool:
        return bool(self.missing or self.corrupt)

    def to_json(self) -> dict[str, Any]:
        return {"checked": self.checked, "ok": self.ok,
                "missing": [f.to_json() for f in self.missing],
                "corrupt": [f.to_json() for f in self.corrupt],
                "errors": self.errors, "audit_seq": self.audit_seq}


# --------------------------------------------------------------------------- validation


def _non_negative_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid(f"{name} must be a non-negative integer", details={"field": name})
    return value


def _limit(value: Any, name: str, maximum: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (
            maximum is not None and value > maximum):
        upper = f"..{maximum}" if maximum is not None else " or more"
        raise Invalid(f"{name} must be an integer 1{upper}", details={"field": name})
    return value


def _duration(value: Any, name: str) -> timedelta:
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise Invalid(f"{name} must be a non-negative duration", details={"field": name})
    return value


# --------------------------------------------------------------------------- service


class HygieneService:
    """Report hygiene debt, collect garbage, verify stored blobs (see module docstring)."""

    def __init__(
        self, db: Database, authz: Authorizer, store: BlobStore, settings: Settings,
        policy: PolicyService | None = None, *, clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.authz = authz
        self.store = store
        self.settings = settings
        self.policy = policy
        self.clock = clock

    # ------------------------------------------------------------------ report

    def _stages(self, conn: Connection) -> tuple[str, str | None]:
        """(production stage, archive stage) of the current policy.

        The production stage is the one named ``production``, else the last stage of the
        promotion order that is not the archive stage.
        """
        stages: tuple[str, ...] = _DEFAULT_STAGES
        archive: str | None = _DEFAULT_ARCHIVE
        if self.policy is not None:
            p = self.policy.current(conn).policy
            stages, archive = tuple(p.stages), p.archive_stage
        if "production" in stages:
            return "production", archive
        live = [s for s in stages if s != archive]
        return (live[-1] if live else "production"), archive

    def report(
        self, actor: Actor, *, limit: int = DEFAULT_LIMIT,
        verify_window: timedelta = DEFAULT_VERIFY_WINDOW,
    ) -> HygieneReport:
        """The registry's hygiene debt; ``limit`` caps every list (counts are exact).

        Needs ``audit:read`` at registry scope: the report names models across teams.
        """
        self.authz.require(actor, Permission.AUDIT_READ)
        limit = _limit(limit, "limit", MAX_LIMIT)
        window = _duration(verify_window, "verify_window")
        now = self.clock()
        expiry = self.settings.upload_expiry_seconds
        with self.db.read() as conn:
            production, archive = self._stages(conn)
            o = hq.orphan_totals(conn)
            orphans = OrphanedBlobs(
                count=int(o.n), bytes=int(o.bytes), oldest_created_at=o.oldest,
                items=[BlobItem(r.digest, int(r.size), r.created_at)
                       for r in hq.orphan_blobs(conn, created_before=None, limit=limit)],
            )
            upload_cutoff = now - timedelta(seconds=expiry)
            u = hq.stale_upload_totals(conn, upload_cutoff)
            stale = StaleUploads(
                count=int(u.n), bytes=int(u.bytes), expiry_seconds=expiry,
                items=[UploadItem(r.id, r.digest, int(r.size), r.created_at, r.created_by)
                       for r in hq.stale_uploads(conn, upload_cutoff, limit=limit)],
            )
            total, per_model, rows = hq.superseded_summary(conn, production, archive, limit)
            superseded = SupersededVersions(
                count=total, production_stage=production,
                by_model=[ModelCount(r.model, int(r.n)) for r in per_model],
                items=[SupersededItem(r.model, int(r.number), r.stage, int(r.newest_production))
                       for r in rows],
            )
            n_versions, n_blobs, per_model, rows = hq.unverified_summary(conn, now - window, limit)
            unverified = UnverifiedVersions(
                count=n_versions, blobs=n_blobs, window_seconds=int(window.total_seconds()),
                by_model=[ModelCount(r.model, int(r.n)) for r in per_model],
                items=[UnverifiedItem(r.model, int(r.number), r.path, r.digest, r.verified_at)
                       for r in rows],
            )
            failures = self._open_failures(conn, limit)
        return HygieneReport(generated_at=now, orphaned_blobs=orphans, stale_uploads=stale,
                             superseded_versions=superseded, unverified_versions=unverified,
                             verification_failures=failures)

    @staticmethod
    def _open_failures(conn: Connection, limit: int | None) -> VerificationFailures:
        """The latest ``hygiene.verify`` event's failures whose blob is still unverified."""
        event = hq.latest_event(conn, VERIFY_ACTION)
        if event is None:
            return VerificationFailures(checked_at=None, audit_seq=None, items=[])
        after = event.after if isinstance(event.after, dict) else {}
        listed = [f for f in map(BlobFailure.from_json, after.get("failures") or []) if f]
        still = hq.unverified_digests(conn, [f.digest for f in listed])
        items = [f for f in listed if f.digest in still]
        if limit is not None:
            items = items[:limit]
        return VerificationFailures(checked_at=event.at, audit_seq=int(event.seq), items=items)

    # ------------------------------------------------------------------ garbage collection

    def collect_garbage(
        self, actor: Actor, *, grace_seconds: int = DEFAULT_GRACE_SECONDS, dry_run: bool = False,
    ) -> GCResult:
        """Delete orphaned blobs older than ``grace_seconds`` and stale uploads.

        Also aborts store-side uploads no database row names and purges the store's
        staging leftovers (both idle for ``upload_expiry_seconds``). Audited as one
        ``hygiene.gc`` event with the counts, written in the transaction that deletes the
        rows. A dry run changes nothing and is not audited.
        """
        self.authz.require(actor, Permission.HYGIENE_RUN)
        grace = _non_negative_int(grace_seconds, "grace_seconds")
        now = self.clock()
        blob_cutoff = now - timedelta(seconds=grace)
        expiry = self.settings.upload_expiry_seconds
        upload_cutoff = now - timedelta(seconds=expiry)
        with self.db.read() as conn:
            candidates = hq.orphan_blobs(conn, created_before=blob_cutoff, limit=MAX_GC_ITEMS + 1)
            stale = hq.stale_uploads(conn, upload_cutoff, limit=MAX_GC_ITEMS + 1)
        truncated = len(candidates) > MAX_GC_ITEMS or len(stale) > MAX_GC_ITEMS
        candidates, stale = candidates[:MAX_GC_ITEMS], stale[:MAX_GC_ITEMS]
        # Store-side uploads idle past the expiry that no row names: an upload_start whose
        # row was never written (a crash in between). A live upload's file is fresh.
        idle = self.store.list_stale_uploads(expiry)
        with self.db.read() as conn:
            known = hq.known_upload_handles(conn, idle)
        strays = [h for h in idle if h not in known]

        if dry_run:
            return GCResult(
                dry_run=True, grace_seconds=grace, blobs=len(candidates),
                bytes_freed=sum(int(c.size) for c in candidates),
                digests=[c.digest for c in candidates[:MAX_DIGESTS_AUDITED]],
                uploads=len(stale), upload_bytes=sum(int(u.size) for u in stale),
                upload_files=len(strays), staging_files=None, skipped=0, truncated=truncated,
            )

        for handle in strays:
            self.store.upload_abort(handle)
        staging = self.store.purge_staging(expiry)

        try:
            with self.db.write() as conn:
                lockable = hq.lock_blobs_for_delete(conn, [c.digest for c in candidates])
                deleted = hq.delete_orphan_blobs(conn, lockable, created_before=blob_cutoff)
                gone = hq.stale_uploads(conn, upload_cutoff, limit=MAX_GC_ITEMS, lock=True)
                hq.delete_uploads(conn, [u.id for u in gone])
                digests = sorted(str(r.digest) for r in deleted)
                freed = sum(int(r.size) for r in deleted)
                upload_bytes = sum(int(u.size) for u in gone)
                skipped = len(candidates) - len(deleted)
                seq = audit.append(
                    conn, actor, GC_ACTION, at=now, target="blobs",
                    after={"grace_seconds": grace, "blobs": len(deleted), "bytes_freed": freed,
                           "uploads": len(gone), "upload_bytes": upload_bytes,
                           "upload_files": len(strays), "staging_files": staging,
                           "skipped": skipped, "truncated": truncated,
                           "digests": digests[:MAX_DIGESTS_AUDITED]},
                )
        except IntegrityError:
            # The foreign key from version_files is the last line of defence: a blob was
            # referenced after all. Nothing was deleted (the transaction rolled back).
            raise Conflict("a concurrent registration referenced a blob being collected; "
                           "nothing was deleted, run the collection again") from None

        # The rows are gone, so nothing can reference these blobs any more: now the bytes.
        # A failure here only leaves unreachable bytes (re-used if the blob is uploaded again).
        removed: list[str] = []
        for digest in digests:
            try:
                self.store.delete(digest)
                removed.append(digest)
            except RegistryError as exc:
                log.warning("hygiene: could not delete the bytes of blob %s: %s", digest, exc)
        for u in gone:
            try:
                self.store.upload_abort(u.handle)
            except RegistryError as exc:
                log.warning("hygiene: could not abort upload %s: %s", u.id, exc)
        repaired = self._repair(actor, removed)
        return GCResult(
            dry_run=False, grace_seconds=grace, blobs=len(deleted), bytes_freed=freed,
            digests=digests[:MAX_DIGESTS_AUDITED], uploads=len(gone), upload_bytes=upload_bytes,
            upload_files=len(strays), staging_files=staging, skipped=skipped,
            truncated=truncated, repaired=repaired, audit_seq=seq,
        )

    def _repair(self, actor: Actor, removed: Sequence[str]) -> list[str]:
        """Undo the one interleaving the row-first order cannot exclude.

        An upload of the very same bytes may have found them still stored (so it wrote
        nothing) and then recorded a new row after the collector deleted the old one,
        while the collector went on to delete the bytes. Such a row names bytes that are
        gone: remove it again if no version references it yet (the uploader's
        registration then asks for the bytes again), else clear its ``verified_at`` so the
        report and the next verification show it.
        """
        if not removed:
            return []
        with self.db.read() as conn:
            back = hq.existing_blobs(conn, removed)
        lost = sorted(d for d in back if not self._exists(d))
        if not lost:
            return []
        with self.db.write() as conn:
            lockable = hq.lock_blobs_for_delete(conn, lost)
            dropped = {str(r.digest) for r in hq.delete_orphan_blobs(conn, lockable,
                                                                     created_before=None)}
            flagged = [d for d in lost if d not in dropped]
            hq.set_verified_at(conn, flagged, None)
            audit.append(conn, actor, GC_REPAIR_ACTION, at=self.clock(), target="blobs",
                         after={"removed": sorted(dropped), "flagged_unverified": flagged})
        log.warning("hygiene: %d blob(s) were re-recorded during collection: %s", len(lost), lost)
        return lost

    def _exists(self, digest: str) -> bool:
        try:
            return self.store.exists(digest)
        except RegistryError:
            return True  # cannot tell: leave the row alone

    # ------------------------------------------------------------------ verification

    def verify_blobs(
        self, actor: Actor, *, limit: int | None = None, older_than: timedelta | None = None,
    ) -> BlobVerification:
        """Re-hash stored blobs: never-verified first, then the longest unverified.

        ``limit`` bounds the run; ``older_than`` skips blobs verified more recently. The
        hashing happens outside any transaction; then one transaction stamps
        ``verified_at`` of the good blobs, clears it for missing or corrupt ones, and
        writes the ``hygiene.verify`` audit event listing the failures with the versions
        that reference them.
        """
        self.authz.require(actor, Permission.HYGIENE_RUN)
        if limit is not None:
            limit = _limit(limit, "limit", None)
        window = _duration(older_than, "older_than") if older_than is not None else None
        started = self.clock()
        with self.db.read() as conn:
            rows = hq.blobs_to_verify(
                conn, verified_before=started - window if window is not None else None,
                limit=limit)
        good: list[str] = []
        bad: dict[str, str] = {}
        errors = 0
        for r in rows:
            try:
                ok = self.store.verify(r.digest)
            except NotFound:
                bad[r.digest] = MISSING
                continue
            except RegistryError as exc:
                errors += 1
                log.warning("hygiene: could not verify blob %s: %s", r.digest, exc)
                continue
            if ok:
                good.append(r.digest)
            else:
                bad[r.digest] = CORRUPT
        checked = {r.digest for r in rows}
        now = self.clock()
        with self.db.write() as conn:
            # A blob collected meanwhile is no failure: only rows that still exist count.
            present = hq.existing_blobs(conn, list(bad))
            bad = {d: p for d, p in bad.items() if d in present}
            hq.set_verified_at(conn, good, now)
            hq.set_verified_at(conn, list(bad), None)
            refs = hq.referencing_versions(conn, list(bad), per_digest=MAX_REFS_PER_BLOB)
            found = [BlobFailure(d, p, tuple(refs.get(d, []))) for d, p in sorted(bad.items())]
            earlier = [f for f in self._open_failures(conn, None).items if f.digest not in checked]
            recorded = (found + earlier)[:MAX_FAILURES_RECORDED]
            seq = audit.append(
                conn, actor, VERIFY_ACTION, at=now, target="blobs",
                after={"checked": len(rows) - errors, "ok": len(good),
                       "missing": sum(1 for f in found if f.problem == MISSING),
                       "corrupt": sum(1 for f in found if f.problem == CORRUPT),
                       "errors": errors, "limit": limit,
                       "older_than_seconds": int(window.total_seconds()) if window else None,
                       "failures": [f.to_json() for f in recorded],
                       "failures_total": len(found) + len(earlier)},
            )
        return BlobVerification(
            checked=len(rows) - errors, ok=len(good),
            missing=[f for f in found if f.problem == MISSING],
            corrupt=[f for f in found if f.problem == CORRUPT],
            errors=errors, audit_seq=seq,
        )
