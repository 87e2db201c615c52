"""Every table of the metadata store (SQLAlchemy Core).

Only portable types, and constraint names fixed by a naming convention, so SQLite and
PostgreSQL run the same code and the same Alembic migrations.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from regista.store.sql.types import BigId, Json, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

NAME_LEN = 128
DIGEST_LEN = 64

# --------------------------------------------------------------------------- registry

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(NAME_LEN), nullable=False),
    Column("normalized_name", String(NAME_LEN), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("owner_team", String(NAME_LEN), nullable=True),
    Column("risk_tier", String(32), nullable=True),
    Column("archived", Boolean, nullable=False, default=False),
    Column("archived_at", UTCDateTime, nullable=True),
    # The locked counter that hands out version numbers (never MAX()+1).
    Column("version_counter", Integer, nullable=False, default=0),
    Column("latest_version", Integer, nullable=True),
    Column("next_review_at", UTCDateTime, nullable=True, index=True),
    Column("created_at", UTCDateTime, nullable=False, index=True),
    Column("created_by", String(NAME_LEN), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

model_tags = Table(
    "model_tags",
    metadata,
    Column("model_id", ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", String(1024), nullable=False),
    Index("ix_model_tags_key_value", "key", "value"),
)

blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(DIGEST_LEN), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("verified_at", UTCDateTime, nullable=True),
)

versions = Table(
    "versions",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("model_id", ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("digest", String(DIGEST_LEN), nullable=False, index=True),
    Column("description", Text, nullable=False, default=""),
    Column("stage", String(32), nullable=False, default="registered"),
    Column("stage_changed_at", UTCDateTime, nullable=False),
    # Frozen provenance: training data, code, parameters, metrics, environment, extras.
    Column("provenance", Json, nullable=False),
    Column("framework", String(64), nullable=True),
    Column("parent_version_id", ForeignKey("versions.id"), nullable=True),
    Column("file_count", Integer, nullable=False),
    Column("total_size", BigInteger, nullable=False),
    Column("idempotency_key", String(128), nullable=True),
    Column("request_hash", String(DIGEST_LEN), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(NAME_LEN), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("model_id", "number", name="uq_versions_model_id_number"),
    UniqueConstraint("model_id", "idempotency_key", name="uq_versions_model_id_idempotency_key"),
    Index("ix_versions_model_id_stage", "model_id", "stage"),
    Index("ix_versions_created_at_id", "created_at", "id"),
    # A model's versions newest first (the default order of its listing and of a
    # name = "..." search), read in index order instead of sorted.
    Index("ix_versions_model_id_created_at_id", "model_id", "created_at", "id"),
    Index("ix_versions_created_by", "created_by"),
    # Partial: almost all versions have no parent, and a full index on a mostly-NULL
    # column can look useless to the planner after ANALYZE.
    Index("ix_versions_parent_version_id", "parent_version_id",
          sqlite_where=text("parent_version_id IS NOT NULL"),
          postgresql_where=text("parent_version_id IS NOT NULL")),
)

version_files = Table(
    "version_files",
    metadata,
    Column("version_id", ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("digest", ForeignKey("blobs.digest"), nullable=False, index=True),
    Column("size", BigInteger, nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("role", String(32), nullable=False),
)

version_tags = Table(
    "version_tags",
    metadata,
    Column("version_id", ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", String(1024), nullable=False),
    Index("ix_version_tags_key_value", "key", "value", "version_id"),
)

version_metrics = Table(
    "version_metrics",
    metadata,
    Column("version_id", ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("value", Float, nullable=False),
    Index("ix_version_metrics_name_value", "name", "value", "version_id"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_id", ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(NAME_LEN), primary_key=True),
    Column("version_id", ForeignKey("versions.id"), nullable=False, index=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(NAME_LEN), nullable=False),
)

# Every alias move, so an alias can be read "as of" any past instant.
alias_events = Table(
    "alias_events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("model_id", ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("alias", String(NAME_LEN), nullable=False),
    Column("version_id", ForeignKey("versions.id"), nullable=True),  # NULL: deleted
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(NAME_LEN), nullable=False),
    Index("ix_alias_events_model_id_alias_at", "model_id", "alias", "at", "id"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("handle", String(512), nullable=False),
    Column("digest", String(DIGEST_LEN), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, index=True),
    Column("created_by", String(NAME_LEN), nullable=False),
)

# --------------------------------------------------------------------------- audit

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(NAME_LEN), nullable=False),
    Column("action", String(64), nullable=False),
    Column("outcome", String(16), nullable=False, default="ok"),  # ok | denied | break_glass
    Column("model", String(NAME_LEN), nullable=True),
    Column("version", Integer, nullable=True),
    Column("target", String(512), nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("before", Json, nullable=True),
    Column("after", Json, nullable=True),
    Column("prev_hash", String(DIGEST_LEN), nullable=False),
    Column("hash", String(DIGEST_LEN), nullable=False),
    Index("ix_audit_events_model_seq", "model", "seq"),
    Index("ix_audit_events_actor_seq", "actor", "seq"),
    Index("ix_audit_events_action_seq", "action", "seq"),
    Index("ix_audit_events_at", "at"),
)

# A single row holding the chain head; locking it serialises appends on PostgreSQL.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(DIGEST_LEN), nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(DIGEST_LEN), nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

# --------------------------------------------------------------------------- identity

principals = Table(
    "principals",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(NAME_LEN), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # user | team | service
    Column("display_name", String(255), nullable=False, default=""),
    Column("email", String(320), nullable=True),
    Column("password_hash", String(255), nullable=True),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(NAME_LEN), nullable=False),
)

team_members = Table(
    "team_members",
    metadata,
    Column("team_id", ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True),
    Column("member_id", ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_team_members_member_id", "member_id"),  # role lookups go member → teams
)

role_bindings = Table(
    "role_bindings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("principal_id", ForeignKey("principals.id", ondelete="CASCADE"), nullable=False),
    Column("role", String(32), nullable=False),
    Column("scope_type", String(16), nullable=False),  # registry | team | model
    Column("scope", String(NAME_LEN), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(NAME_LEN), nullable=False),
    UniqueConstraint("principal_id", "role", "scope_type", "scope",
                     name="uq_role_bindings_principal_role_scope"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_id", String(32), nullable=False, unique=True),  # public part, for lookup
    Column("secret_hash", String(DIGEST_LEN), nullable=False),
    Column("principal_id", ForeignKey("principals.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(NAME_LEN), nullable=False),
    Column("scopes", Json, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
)

# --------------------------------------------------------------------------- governance

policies = Table(
    "policies",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("document", Text, nullable=False),
    Column("digest", String(DIGEST_LEN), nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
    Column("applied_by", String(NAME_LEN), nullable=False),
)

transition_requests = Table(
    "transition_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version_id", ForeignKey("versions.id", ondelete="CASCADE"), nullable=False),
    Column("version_digest", String(DIGEST_LEN), nullable=False),
    Column("from_stage", String(32), nullable=False),
    Column("to_stage", String(32), nullable=False),
    Column("justification", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending|applied|rejected|cancelled|superseded
    Column("checks", Json, nullable=False),
    Column("policy_version", Integer, nullable=False),
    Column("requested_by", String(NAME_LEN), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime, nullable=True),
    Index("ix_transition_requests_status_id", "status", "id"),
    Index("ix_transition_requests_version_id", "version_id"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("request_id", ForeignKey("transition_requests.id", ondelete="CASCADE"),
           nullable=False),
    Column("approver", String(NAME_LEN), nullable=False),
    Column("decision", String(16), nullable=False),  # approve | reject
    Column("comment", Text, nullable=False, default=""),
    Column("version_digest", String(DIGEST_LEN), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    UniqueConstraint("request_id", "approver", name="uq_approvals_request_id_approver"),
)

stage_events = Table(
    "stage_events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("version_id", ForeignKey("versions.id", ondelete="CASCADE"), nullable=False),
    Column("from_stage", String(32), nullable=True),
    Column("to_stage", String(32), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(NAME_LEN), nullable=False),
    Column("request_id", ForeignKey("transition_requests.id"), nullable=True),
    Column("break_glass", Boolean, nullable=False, default=False),
    Column("reason", Text, nullable=False, default=""),
    Index("ix_stage_events_version_id_at", "version_id", "at"),
)

environments = Table(
    "environments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(NAME_LEN), nullable=False, unique=True),
    Column("min_stage", String(32), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
)

# Append-only: each row says "from `at`, model M serves version V in environment E"
# (version_id NULL: M stopped serving there). A deployment's end is the next event.
deployment_events = Table(
    "deployment_events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("environment_id", ForeignKey("environments.id"), nullable=False),
    Column("model_id", ForeignKey("models.id"), nullable=False),
    Column("version_id", ForeignKey("versions.id"), nullable=True),
    Column("at", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("recorded_by", String(NAME_LEN), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Index("ix_deployment_events_env_model_at", "environment_id", "model_id", "at", "id"),
    # An environment's timeline in time order, across its models.
    Index("ix_deployment_events_environment_id_at", "environment_id", "at", "id"),
    Index("ix_deployment_events_version_id_at", "version_id", "at"),
)

# Which models ever served in an environment: lets "as of" walk one index seek per model.
environment_models = Table(
    "environment_models",
    metadata,
    Column("environment_id", ForeignKey("environments.id"), primary_key=True),
    Column("model_id", ForeignKey("models.id"), primary_key=True),
)

observations = Table(
    "observations",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("environment_id", ForeignKey("environments.id"), nullable=False),
    Column("digest", String(DIGEST_LEN), nullable=False),
    Column("observed_at", UTCDateTime, nullable=False),
    Column("reported_by", String(NAME_LEN), nullable=False),
    Column("instance", String(255), nullable=False, default=""),
    Index("ix_observations_environment_id_observed_at", "environment_id", "observed_at"),
)
