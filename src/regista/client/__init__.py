"""The Python client of Regista's REST API v1.

::

    from regista import Client

    with Client("http://127.0.0.1:8080", token=None) as rc:
        v = rc.register("fraud-scorer", "out/model", metadata="provenance.yaml", create_model=True)
        print(v.ref, v.digest)
        rc.pull("fraud-scorer@champion", "serving/model")

``url`` defaults to ``$REGISTA_URL`` and ``token`` to ``$REGISTA_TOKEN``. Errors are the
classes of :mod:`regista.errors` the server raised (``NotFound``, ``Conflict``,
``MissingMetadata`` with ``.missing`` …), rebuilt from the JSON error body. Results are
small frozen dataclasses (:mod:`regista.client.types`) mirroring the wire schemas; each has
``.raw``, the JSON object it was built from.

How the client is put together (and how to add to it)
-----------------------------------------------------

``Client`` is :class:`~regista.client._base.BaseClient` (one pooled ``httpx.Client``,
authentication, ``_request``/``_json``/``_pages``/``_stream``) plus one *mixin* per
area of the API. To add an area:

1. Write ``src/regista/client/_<area>.py`` with ``class <Area>Mixin(BaseClient)`` that
   defines methods only (no ``__init__``, no state) and calls ``self._request`` /
   ``self._json`` / ``self._pages``. Put its result types in the same module (frozen
   dataclasses with a ``from_json`` classmethod, like :mod:`regista.client.types`).
2. Import it below and add it to the bases of ``Client`` **before** ``BaseClient``
   (one line each; keep the list one mixin per line so concurrent edits merge).
3. Test it in ``tests/client/`` against the ``live_server`` fixture.
"""

from __future__ import annotations

from regista.client._audit import AuditCheckpoint, AuditEvent, AuditMixin, AuditVerification
from regista.client._base import BaseClient, Pager
from regista.client._deployments import (
    Deployment,
    DeploymentEvent,
    DeploymentsMixin,
    DriftReport,
    EnvironmentInfo,
    Observation,
    ServedAnswer,
    ServingInterval,
)
from regista.client._hygiene import BlobVerification, GCResult, HygieneMixin, HygieneReport
from regista.client._identity import (
    ApiToken,
    IdentityMixin,
    IssuedToken,
    NewUser,
    Principal,
    RoleBinding,
    WhoAmI,
)
from regista.client._lifecycle import (
    Approval,
    CheckOutcome,
    LifecycleMixin,
    PolicyApplyResult,
    PolicyInfo,
    PolicyVersion,
    StageChange,
    TransitionRequest,
)
from regista.client._registry import RegistryMixin
from regista.client.types import (
    AliasEvent,
    BlobStatus,
    FileInfo,
    Model,
    ServerInfo,
    UploadState,
    Version,
)


class Client(
    RegistryMixin,
    AuditMixin,
    DeploymentsMixin,
    HygieneMixin,
    IdentityMixin,
    LifecycleMixin,
    BaseClient,
):
    """Synchronous client of a Regista server (see the module docstring)."""


__all__ = [
    "AliasEvent",
    "ApiToken",
    "Approval",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditVerification",
    "BaseClient",
    "BlobStatus",
    "BlobVerification",
    "CheckOutcome",
    "Client",
    "Deployment",
    "DeploymentEvent",
    "DriftReport",
    "EnvironmentInfo",
    "FileInfo",
    "GCResult",
    "HygieneReport",
    "IdentityMixin",
    "IssuedToken",
    "Model",
    "NewUser",
    "Observation",
    "Pager",
    "PolicyApplyResult",
    "PolicyInfo",
    "PolicyVersion",
    "Principal",
    "RoleBinding",
    "ServedAnswer",
    "ServerInfo",
    "ServingInterval",
    "StageChange",
    "TransitionRequest",
    "UploadState",
    "Version",
    "WhoAmI",
]
