"""A realistic demo portfolio, written through the service layer (``regista demo``).

Five models are trained for real with scikit-learn on the datasets it ships (breast
cancer, wine, iris, diabetes, digits), a few versions each with different
hyper-parameters. Every version carries real metrics, a model card, an evaluation report
and its parameters as JSON (never pickle). The history spans about nine simulated months:
a platform owner applies the policy, a data scientist registers and requests
promotions, two approvers approve, a deployment pipeline deploys to ``staging`` and
``production``, one production release is rolled back, one model is overdue for review,
and a serving system reports a digest nobody registered (drift).

Everything goes through the same services the API uses, under a simulated clock, so
the audit chain, stage history and deployment timelines are those a real registry would
have recorded.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from regista.config import Settings
from regista.domain.models import Actor, PrincipalKind
from regista.service.clock import simulated_time
from regista.service.container import Services
from regista.service.registry import NewFile

DEMO_PASSWORD = "regista-demo-password"  # noqa: S105 - public, printed demo credential
"""Password of every demo user (printed by ``regista demo``)."""

USERS = (
    ("margaret", "Margaret Hamilton", "platform owner (admin)"),
    ("ada", "Ada Lovelace", "data scientist (contributor)"),
    ("grace", "Grace Hopper", "model risk (approver)"),
    ("alan", "Alan Turing", "model risk (approver)"),
)

ROLLBACK_POLICY_NOTE = (
    "Keep the previous production version deployable for fast rollbacks: "
    "superseded production versions are archived by hand once the new one has proven itself."
)


class DemoError(Exception):
    """The demo cannot run here (data directory not empty, scikit-learn missing)."""


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class Spec:
    """One model of the portfolio and the versions trained for it."""

    name: str
    dataset: str
    task: str  # classification | regression
    team: str
    risk_tier: str
    description: str
    intended_use: str
    tags: dict[str, str]
    versions: tuple[dict[str, Any], ...]
    limitations: str = ""


SPECS: tuple[Spec, ...] = (
    Spec(
        name="breast-cancer-screening", dataset="breast_cancer", task="classification",
        team="clinical-ai", risk_tier="high",
        description="Flags fine-needle aspirate samples for pathologist review.",
        intended_use="Decision support for pathologists triaging breast-mass biopsies; never "
                     "a diagnosis on its own.",
        tags={"domain": "health", "pii": "none"},
        limitations="Trained on 569 samples from one clinic (Wisconsin, 1995); performance on "
                    "other populations and imaging equipment is unknown.",
        versions=(
            {"estimator": "logistic", "C": 0.05},
            {"estimator": "logistic", "C": 1.0},
            {"estimator": "tree", "max_depth": 4},
        ),
    ),
    Spec(
        name="wine-cultivar", dataset="wine", task="classification", team="quality-lab",
        risk_tier="low",
        description="Identifies the cultivar of a wine from its chemical analysis.",
        intended_use="Quality control in the lab: checks that a batch matches its label.",
        tags={"domain": "quality"},
        versions=(
            {"estimator": "tree", "max_depth": 2},
            {"estimator": "logistic", "C": 0.1},
            {"estimator": "logistic", "C": 1.0},
        ),
    ),
    Spec(
        name="iris-species", dataset="iris", task="classification", team="research",
        risk_tier="low",
        description="The classic: iris species from sepal and petal measurements.",
        intended_use="Teaching and smoke tests of the deployment pipeline.",
        tags={"domain": "research"},
        versions=(
            {"estimator": "tree", "max_depth": 2},
            {"estimator": "logistic", "C": 1.0},
        ),
    ),
    Spec(
        name="diabetes-progression", dataset="diabetes", task="regression", team="clinical-ai",
        risk_tier="critical",
        description="Predicts disease progression one year after baseline.",
        intended_use="Prioritises follow-up appointments; a clinician reviews every schedule.",
        tags={"domain": "health", "pii": "pseudonymised"},
        limitations="442 patients; features are normalised and lack context such as treatment.",
        versions=(
            {"estimator": "ridge", "alpha": 10.0},
            {"estimator": "ridge", "alpha": 1.0},
            {"estimator": "tree", "max_depth": 3},
        ),
    ),
    Spec(
        name="digits-ocr", dataset="digits", task="classification", team="document-ai",
        risk_tier="high",
        description="Reads handwritten digits on scanned forms (8x8 grey-scale crops).",
        intended_use="Pre-fills numeric fields of scanned forms for a human to confirm.",
        tags={"domain": "documents"},
        versions=(
            {"estimator": "logistic", "C": 0.01},
            {"estimator": "logistic", "C": 0.5},
        ),
    ),
)


@dataclass
class Trained:
    """A trained version: its metrics, parameters and the files to register."""

    params: dict[str, Any]
    metrics: dict[str, float]
    files: dict[str, tuple[bytes, str, str]]  # path -> (bytes, role, media type)
    data_digest: str
    n_train: int
    n_test: int
    sklearn_version: str
    numpy_version: str


def _sklearn() -> Any:
    try:
        import sklearn
    except ImportError as exc:
        raise DemoError("the demo trains models with scikit-learn: "
                        "pip install 'regista[demo]' (or scikit-learn)") from exc
    return sklearn


def _tolist(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


def _estimator(task: str, cfg: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    kind = cfg["estimator"]
    if kind == "logistic":
        params = {"estimator": "LogisticRegression", "C": cfg["C"], "max_iter": 2000,
                  "scaler": "standard"}
        return make_pipeline(StandardScaler(), LogisticRegression(C=cfg["C"], max_iter=2000)), params
    if kind == "ridge":
        params = {"estimator": "Ridge", "alpha": cfg["alpha"], "scaler": "standard"}
        return make_pipeline(StandardScaler(), Ridge(alpha=cfg["alpha"])), params
    if kind == "tree":
        params = {"estimator": "DecisionTree", "max_depth": cfg["max_depth"], "random_state": 0}
        cls = DecisionTreeClassifier if task == "classification" else DecisionTreeRegressor
        return cls(max_depth=cfg["max_depth"], random_state=0), params
    raise ValueError(kind)  # pragma: no cover - SPECS only use the kinds above


def export_model(model: Any) -> dict[str, Any]:
    """The fitted parameters as plain JSON (scaler statistics, coefficients or tree arrays).

    Enough to re-implement ``predict`` without unpickling anything.
    """
    steps = model.steps if hasattr(model, "steps") else [("model", model)]
    out: dict[str, Any] = {"format": "regista-demo/sklearn-json", "format_version": 1,
                           "steps": []}
    for name, step in steps:
        doc: dict[str, Any] = {"name": name, "class": type(step).__name__}
        if hasattr(step, "mean_"):
            doc.update(mean=_tolist(step.mean_), scale=_tolist(step.scale_))
        if hasattr(step, "coef_"):
            doc.update(coef=_tolist(step.coef_), intercept=_tolist(step.intercept_))
        if hasattr(step, "classes_"):
            doc["classes"] = _tolist(step.classes_)
        if hasattr(step, "tree_"):
            t = step.tree_
            doc["tree"] = {
                "children_left": _tolist(t.children_left),
                "children_right": _tolist(t.children_right),
                "feature": _tolist(t.feature),
                "threshold": [round(float(x), 6) for x in t.threshold],
                "value": [[round(float(v), 6) for v in row.ravel()] for row in t.value],
            }
        out["steps"].append(doc)
    return out


def train(spec: Spec, cfg: dict[str, Any], number: int) -> Trained:
    """Train one version of ``spec`` for real and build its files."""
    sklearn = _sklearn()
    import numpy as np
    from sklearn import datasets, metrics
    from sklearn.model_selection import train_test_split

    loader: Callable[..., Any] = getattr(datasets, f"load_{spec.dataset}")
    bunch = loader()
    x, y = bunch.data, bunch.target
    data_digest = hashlib.sha256(np.ascontiguousarray(x).tobytes()
                                 + np.ascontiguousarray(y).tobytes()).hexdigest()
    stratify = y if spec.task == "classification" else None
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=42,
                                                        stratify=stratify)
    model, params = _estimator(spec.task, cfg)
    model.fit(x_train, y_train)
    predicted = model.predict(x_test)
    report: dict[str, Any] = {"dataset": spec.dataset, "split": {"test_size": 0.25, "seed": 42},
                              "n_train": len(y_train), "n_test": len(y_test)}
    if spec.task == "classification":
        values = {
            "accuracy": metrics.accuracy_score(y_test, predicted),
            "f1_macro": metrics.f1_score(y_test, predicted, average="macro"),
            "precision_macro": metrics.precision_score(y_test, predicted, average="macro",
                                                       zero_division=0),
            "recall_macro": metrics.recall_score(y_test, predicted, average="macro"),
        }
        if len(set(y)) == 2:
            values["roc_auc"] = metrics.roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])
        report["confusion_matrix"] = metrics.confusion_matrix(y_test, predicted).tolist()
        report["per_class"] = metrics.classification_report(y_test, predicted, output_dict=True,
                                                            zero_division=0)
    else:
        values = {
            "r2": metrics.r2_score(y_test, predicted),
            "mae": metrics.mean_absolute_error(y_test, predicted),
            "rmse": float(np.sqrt(metrics.mean_squared_error(y_test, predicted))),
        }
    rounded = {k: round(float(v), 5) for k, v in values.items()}
    report["metrics"] = rounded
    card = model_card(spec, number, params, rounded, len(y_train), len(y_test))
    files = {
        "model.json": (_dumps(export_model(model)), "model", "application/json"),
        "config.json": (_dumps({"hyperparameters": params, "features": _features(bunch)}),
                        "config", "application/json"),
        "eval_report.json": (_dumps(report), "eval_report", "application/json"),
        "MODEL_CARD.md": (card.encode(), "model_card", "text/markdown"),
    }
    return Trained(params=params, metrics=rounded, files=files, data_digest=data_digest,
                   n_train=len(y_train), n_test=len(y_test), sklearn_version=sklearn.__version__,
                   numpy_version=np.__version__)


def _features(bunch: Any) -> list[str]:
    names = getattr(bunch, "feature_names", None)
    return [str(n) for n in names] if names is not None else []


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, indent=1, sort_keys=True).encode()


def model_card(spec: Spec, number: int, params: dict[str, Any], values: dict[str, float],
               n_train: int, n_test: int) -> str:
    """A model card in Markdown (rendered safely on the version page)."""
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in sorted(values.items()))
    hyper = ", ".join(f"`{k}={v}`" for k, v in params.items())
    return f"""# {spec.name} — version {number}

{spec.description}

## Model details

- **Owner:** {spec.team}
- **Risk tier:** {spec.risk_tier}
- **Algorithm:** {params['estimator']} ({hyper})
- **Framework:** scikit-learn; parameters exported as JSON (`model.json`), never pickled.

## Intended use

{spec.intended_use}

Out of scope: any fully automated decision about a person.

## Training data

scikit-learn's bundled `{spec.dataset}` dataset: {n_train} training and {n_test} held-out
test samples (stratified 75/25 split, seed 42).

## Evaluation

| Metric | Value |
|---|---|
{rows}

## Limitations

{spec.limitations or "Small public dataset; monitor performance after deployment."}

## Ethical considerations

Predictions can be wrong. A person reviews every output before anything depends on it.
"""


# --------------------------------------------------------------------------- the history


@dataclass
class Clock:
    """The simulated "now": starts months ago and only moves forward."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now = self.now + timedelta(**delta)
        return self.now


@dataclass
class Summary:
    """What the demo created (printed by the CLI)."""

    models: int = 0
    versions: int = 0
    deployments: int = 0
    users: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_empty(data_dir: Path) -> None:
    """Refuse a data directory that already holds anything."""
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise DemoError(f"{data_dir} is not empty: the demo only fills an empty data directory")


class Demo:
    """Writes the demo history into ``services`` (an empty registry)."""

    def __init__(self, services: Services, *, end: datetime | None = None,
                 log: Callable[[str], None] = lambda _: None) -> None:
        self.services = services
        self.end = end or datetime.now(UTC)
        self.clock = Clock(self.end - timedelta(days=270))
        self.log = log
        self.summary = Summary()
        self.actors: dict[str, Actor] = {}
        self.trained: dict[tuple[str, int], Trained] = {}

    # -- helpers ---------------------------------------------------------------------

    def as_user(self, name: str) -> Actor:
        if name not in self.actors:
            self.actors[name] = self.services.identity.actor_for_user(name)
        return self.actors[name]

    def tick(self, days: float = 0, hours: float = 0, minutes: float = 0) -> None:
        self.clock.advance(days=days, hours=hours, minutes=minutes)
        if self.clock.now > self.end:
            self.clock.now = self.end - timedelta(minutes=1)

    def run(self) -> Summary:
        """Write the whole history; returns what was created."""
        _sklearn()
        with simulated_time(self.clock):
            for spec in SPECS:  # train first: a failure leaves the registry untouched
                for i, cfg in enumerate(spec.versions, start=1):
                    self.trained[(spec.name, i)] = train(spec, cfg, i)
            self._bootstrap()
            self._story()
        return self.summary

    def _bootstrap(self) -> None:
        identity = self.services.identity
        local = Actor(name="local", local_mode=True)
        self.log("creating users, teams and roles")
        identity.create_user(local, "margaret", display_name="Margaret Hamilton",
                             password=DEMO_PASSWORD, admin=True)
        admin = self.as_user("margaret")
        for name, display, role in USERS[1:]:
            identity.create_user(admin, name, display_name=display, password=DEMO_PASSWORD)
            self.summary.users.append((name, role))
        self.summary.users.insert(0, ("margaret", USERS[0][2]))
        identity.grant_role(admin, "ada", "contributor")
        identity.grant_role(admin, "grace", "approver")
        identity.grant_role(admin, "alan", "approver")
        for team in sorted({s.team for s in SPECS}):
            identity.create_team(admin, team)
        identity.add_member(admin, "clinical-ai", "ada")
        identity.add_member(admin, "research", "ada")
        identity.create_service_account(admin, "deploy-bot", display_name="Deployment pipeline")
        identity.grant_role(admin, "deploy-bot", "contributor")
        identity.create_service_account(admin, "serving-monitor",
                                        display_name="Serving fleet monitor")
        identity.grant_role(admin, "serving-monitor", "contributor")
        self.tick(hours=2)
        self.log("applying the default policy")
        from regista.service.policy import default_document

        self.services.policy.apply(admin, default_document())

    def _service_actor(self, name: str) -> Actor:
        if name not in self.actors:
            principal = self.services.identity.get_principal(self.as_user("margaret"), name)
            self.actors[name] = Actor(name=principal.name, kind=PrincipalKind.SERVICE,
                                      principal_id=principal.id)
        return self.actors[name]

    def register(self, spec: Spec, number: int, *, aliases: tuple[str, ...] = ()) -> str:
        """Register version ``number`` of ``spec`` as ada (creating the model first)."""
        ada = self.as_user("ada")
        registry = self.services.registry
        if number == 1:
            registry.create_model(ada, spec.name, description=spec.description,
                                  owner_team=spec.team, risk_tier=spec.risk_tier, tags=spec.tags)
            self.summary.models += 1
        t = self.trained[(spec.name, number)]
        files = []
        for path, (data, role, media_type) in sorted(t.files.items()):
            digest = hashlib.sha256(data).hexdigest()
            self.services.blobs.put(ada, digest, len(data), iter([data]))
            files.append(NewFile(path=path, digest=digest, size=len(data), role=role,
                                 media_type=media_type))
        commit = hashlib.sha1(f"{spec.name}/{number}".encode()).hexdigest()  # noqa: S324 - a fake commit id
        metadata: dict[str, Any] = {
            "training_data": {"uri": f"sklearn://datasets/{spec.dataset}",
                              "version": f"scikit-learn {t.sklearn_version}",
                              "digest": f"sha256:{t.data_digest}"},
            "training_code": {"repository": f"https://git.example.com/ml/{spec.name}",
                              "commit": commit, "dirty": False},
            "parameters": t.params,
            "metrics": t.metrics,
            "environment": {"python": platform.python_version(),
                            "packages": {"scikit-learn": t.sklearn_version,
                                         "numpy": t.numpy_version}},
            "framework": "scikit-learn",
            "intended_use": spec.intended_use,
            "extras": {"dataset": spec.dataset, "n_train": t.n_train, "n_test": t.n_test},
        }
        if number > 1:
            metadata["parent_version"] = f"{spec.name}/{number - 1}"
        params = ", ".join(f"{k}={v}" for k, v in t.params.items() if k != "estimator")
        registry.register_version(
            ada, spec.name, files=files, metadata=metadata,
            description=f"{t.params['estimator']} ({params})",
            tags={"trainer": "ada", "dataset": spec.dataset}, aliases=aliases,
        )
        self.summary.versions += 1
        return f"{spec.name}/{number}"

    def promote(self, ref: str, to_stage: str, justification: str, *,
                approvers: tuple[str, ...] = ("grace", "alan"), requester: str = "ada") -> int:
        """Request a move as ``requester`` and approve it (it applies on the last approval)."""
        lifecycle = self.services.lifecycle
        request = lifecycle.request_transition(self.as_user(requester), ref, to_stage,
                                               justification)
        if request.status == "pending":
            needed = request.required_approvals or 0
            for name in approvers[:needed]:
                self.tick(hours=5)
                lifecycle.approve(self.as_user(name), request.id,
                                  comment=_approval_comment(name, ref, to_stage))
        return int(request.id)

    def deploy(self, ref: str, environment: str, note: str = "") -> None:
        """Record, as the deployment pipeline, that ``ref`` now serves in ``environment``."""
        deployments = getattr(self.services, "deployments", None)
        if deployments is None:  # pragma: no cover - governance without deployments
            return
        deployments.record_deployment(self._service_actor("deploy-bot"), ref, environment,
                                      note=note)
        self.summary.deployments += 1

    def observe(self, environment: str, digest: str, instance: str) -> None:
        """Report, as the serving monitor, that ``digest`` was seen serving."""
        deployments = getattr(self.services, "deployments", None)
        if deployments is None:  # pragma: no cover
            return
        deployments.report_observation(self._service_actor("serving-monitor"), environment,
                                       digest, instance=instance)

    def review(self, model: str, who: str = "grace") -> None:
        self.services.lifecycle.mark_reviewed(self.as_user(who), model)

    # -- the story -------------------------------------------------------------------

    def _story(self) -> None:
        bc, wine, iris, diabetes, digits = SPECS
        admin = self.as_user("margaret")

        # Month 0-1: first versions registered, validated in staging, promoted.
        self.log("month 1: first versions")
        for spec in (bc, wine, iris, diabetes, digits):
            self.tick(days=1, hours=3)
            ref = self.register(spec, 1)
            self.tick(hours=2)
            self.promote(ref, "staging", "First candidate: validate in staging.")
            self.tick(hours=1)
            self.deploy(ref, "staging", "initial staging rollout")
        for spec in (bc, wine, diabetes, digits):
            self.tick(days=4)
            ref = f"{spec.name}/1"
            self.promote(ref, "production", "Staging validation passed; metrics in the "
                         "evaluation report. Requesting go-live.")
            self.tick(hours=3)
            self.deploy(ref, "production", "go-live")

        # Month 2-3: better versions.
        self.tick(days=35)
        self.log("months 2-3: second versions")
        for spec in (bc, wine, diabetes, digits, iris):
            self.tick(days=3)
            ref = self.register(spec, 2, aliases=("challenger",))
            self.tick(hours=4)
            self.promote(ref, "staging", "Retrained with tuned regularisation.")
            self.deploy(ref, "staging", "challenger in staging")

        # The platform owner relaxes archiving so the previous release stays deployable.
        self.tick(days=6)
        self.log("month 3: policy version 2 (rollback-friendly)")
        from regista.service.policy import default_document

        rollback_friendly = default_document().replace(
            "    archive_superseded: true    # the previous production version is archived",
            "    archive_superseded: false   # keep the previous release for rollbacks",
        ).replace("    single_in_stage: true        # at most one production version per model\n",
                  "").replace("description: Regista default policy",
                              f"description: >-\n  Regista default policy, amended. "
                              f"{ROLLBACK_POLICY_NOTE}")
        self.services.policy.apply(admin, rollback_friendly)

        for spec in (bc, wine, diabetes):
            self.tick(days=5)
            ref = f"{spec.name}/2"
            self.promote(ref, "production", "Challenger beats the champion on the held-out "
                         "set; see the evaluation report.")
            self.tick(hours=6)
            self.deploy(ref, "production", "rollout of v2")
            self.services.registry.set_alias(admin, spec.name, "champion", 2)

        # Month 4-6: third versions; diabetes v3 is rolled back in production.
        self.tick(days=40)
        self.log("months 4-6: third versions and a rollback")
        for spec in (bc, wine, diabetes):
            self.tick(days=4)
            ref = self.register(spec, 3)
            self.tick(hours=3)
            self.promote(ref, "staging", "New architecture candidate.")
            self.deploy(ref, "staging", "candidate v3")
        self.tick(days=10)
        ref = "diabetes-progression/3"
        self.promote(ref, "production", "Tree model captures the non-linear effect of BMI.")
        self.tick(hours=4)
        self.deploy(ref, "production", "rollout of v3")
        self.tick(days=2, hours=7)
        self.deploy("diabetes-progression/2", "production",
                    "ROLLBACK: v3 over-predicts progression for young patients (incident 4711)")
        self.tick(hours=3)
        self.promote(ref, "staging", "Rolled back after incident 4711; back to validation.",
                     approvers=("alan",))
        self.summary.notes.append("diabetes-progression v3 was rolled back in production")

        # Archive what has been superseded for long enough.
        self.tick(days=20)
        for spec in (bc, wine):
            self.promote(f"{spec.name}/1", "archived", "Superseded by v2 for over a month.",
                         approvers=("grace",))
            self.tick(hours=2)

        # Month 7-9: breast cancer v3 goes live; wine v3 waits for a second approval.
        self.tick(days=35)
        self.log("months 7-9: reviews, pending approvals, drift")
        ref = "breast-cancer-screening/3"
        self.promote(ref, "production", "Interpretable tree requested by the clinical board.")
        self.tick(hours=5)
        self.deploy(ref, "production", "rollout of v3")
        self.services.registry.set_alias(admin, bc.name, "champion", 3)
        self.tick(days=30)
        for model in (bc.name, wine.name, iris.name, diabetes.name):
            self.review(model)
            self.tick(hours=3)
        # digits-ocr is never reviewed: with a 90-day interval it is overdue.
        self.summary.notes.append("digits-ocr is overdue for its periodic review")
        self.tick(days=6)
        request = self.services.lifecycle.request_transition(
            self.as_user("ada"), "wine-cultivar/3", "production",
            "v3 improves macro F1; staging ran two weeks without incident.")
        self.tick(hours=20)
        self.services.lifecycle.approve(self.as_user("grace"), request.id,
                                        comment="Evaluation report reviewed; fine by me.")
        self.summary.notes.append(f"request #{request.id} (wine-cultivar/3 → production) "
                                  "waits for a second approval")
        # The serving monitor reports what production runs: one replica runs a build
        # nobody registered (drift).
        self.clock.now = max(self.clock.now, self.end - timedelta(minutes=30))
        monitor = self._service_actor("serving-monitor")
        for i, d in enumerate(self.services.deployments.served_at(monitor, "production")):
            self.observe("production", d.digest, f"{d.model}-{i + 1}")
        self.tick(minutes=10)
        stray = hashlib.sha256(b"hot-fixed digits-ocr build, never registered").hexdigest()
        self.observe("production", stray, "digits-ocr-canary")
        self.summary.notes.append("production reports an unregistered digest (drift)")


def _approval_comment(name: str, ref: str, to_stage: str) -> str:
    if to_stage == "production":
        return {"grace": "Model card and evaluation report reviewed.",
                "alan": "Metrics verified against the evaluation report."}.get(name, "Approved.")
    return "Approved."


def build_demo(settings: Settings, *, log: Callable[[str], None] = lambda _: None,
               end: datetime | None = None) -> Summary:
    """Migrate an empty registry at ``settings`` and write the demo into it."""
    from regista.server import prepare
    from regista.service.container import build_services

    _sklearn()
    if settings.is_sqlite:
        check_empty(Path(settings.data_dir))
    prepare(settings)
    services = build_services(settings)
    try:
        if not services.identity.is_local_mode() or _has_models(services):
            raise DemoError("the registry already holds users or models: the demo only fills "
                            "an empty registry")
        return Demo(services, end=end, log=log).run()
    finally:
        services.close()


def _has_models(services: Services) -> bool:
    local = Actor(name="local", local_mode=True)
    return bool(services.registry.search_models(local, page_size=1).items)
