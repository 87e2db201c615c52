"""Policy as code, and the lifecycle records a policy governs.

A policy is a YAML document (see ``docs/policy.md`` and the shipped
``regista/policy/default.yaml``). :func:`load_policy` parses it, validates it with the
pydantic models below plus the cross-field rules of :func:`_problems`, and reports every
problem with the line it is on: the document is *composed* first (PyYAML keeps a mark
per node), so each pydantic error location maps back to the nearest line.

Plain data only: no SQL, no HTTP. The service layer (``service/policy.py``,
``service/lifecycle.py``) stores policies and applies them.
"""

from __future__ import annotations

import hashlib
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from regista.domain.names import normalize_name, validate_alias, validate_name
from regista.domain.provenance import Provenance
from regista.errors import Invalid

FORMAT = 1
MAX_POLICY_BYTES = 256 * 1024
MAX_NODES = 50_000
MAX_DEPTH = 48
ROLES = ("viewer", "contributor", "approver", "maintainer", "admin")
RISK_TIERS = ("low", "medium", "high", "critical")
REGISTERED = "registered"

#: Named checks a transition may require (metric thresholds are written inline).
CHECKS: dict[str, str] = {
    "metadata_complete": "the version's metadata satisfies the target stage's JSON Schema",
    "model_card_present": "the version has a file with role model_card",
    "eval_report_present": "the version has a file with role eval_report",
    "integrity_verified": "every blob re-hashes to its digest and the manifest to the version digest",
}
#: Fields of the metadata document checked against a stage's JSON Schema that are not
#: provenance: they come from the model and the version's files.
SUBJECT_FIELDS: dict[str, str] = {
    "owner_team": "the model's owner team",
    "risk_tier": "the model's risk tier",
    "model_card": "paths of the version's files with role model_card",
    "eval_report": "paths of the version's files with role eval_report",
}
PROVENANCE_FIELDS = frozenset(Provenance.model_fields)

_STAGE_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}\Z")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_THRESHOLD_RE = re.compile(
    rf"metrics\.(?P<name>[^\s<>=!]{{1,255}})\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>{_NUMBER})\Z"
)
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
    "==": operator.eq, "!=": operator.ne,
}


# --------------------------------------------------------------------------- checks


@dataclass(frozen=True, slots=True)
class Threshold:
    """``metrics.auc >= 0.85``: a metric of the version compared with a number."""

    metric: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Threshold | None:
        m = _THRESHOLD_RE.match(text.strip())
        if m is None:
            return None
        value = float(m["value"])
        if not math.isfinite(value):
            return None
        return cls(metric=m["name"], op=m["op"], value=value)

    def __str__(self) -> str:
        return f"metrics.{self.metric} {self.op} {self.value:g}"

    def evaluate(self, metrics: Mapping[str, float]) -> tuple[bool, str]:
        actual = metrics.get(self.metric)
        if actual is None:
            return False, f"metric {self.metric!r} is not recorded on the version"
        ok = _OPS[self.op](float(actual), self.value)
        return ok, f"{self.metric} = {actual:g}"


def _check_name(value: str) -> str:
    if value in CHECKS or Threshold.parse(value) is not None:
        return value
    if value.strip().startswith("metrics."):
        raise ValueError(f"{value!r} is not a metric threshold; write e.g. 'metrics.auc >= 0.85' "
                         "(operators: >=, <=, >, <, ==, !=)")
    raise ValueError(f"unknown check {value!r}; known checks: {', '.join(CHECKS)}, "
                     "or a metric threshold such as 'metrics.auc >= 0.85'")


def _stage_name(value: str) -> str:
    if not _STAGE_RE.match(value):
        raise ValueError(f"stage name {value!r} must be 1..32 characters: lowercase letters, "
                         "digits, '-' and '_', starting with a letter")
    return value


def _role(value: str) -> str:
    if value not in ROLES:
        raise ValueError(f"unknown role {value!r}; roles: {', '.join(ROLES)}")
    return value


def _env_name(value: str) -> str:
    try:
        return validate_name(value, what="environment name")
    except Invalid as exc:
        raise ValueError(exc.message) from None


def _alias_name(value: str) -> str:
    try:
        return validate_alias(value)
    except Invalid as exc:
        raise ValueError(exc.message) from None


def _stage_shorthand(value: Any) -> Any:
    # ``- production`` is short for ``- name: production``.
    return {"name": value} if isinstance(value, str) else value


CheckName = Annotated[str, AfterValidator(_check_name)]
StageName = Annotated[str, AfterValidator(_stage_name)]
Text = Annotated[str, Field(max_length=4000)]


# --------------------------------------------------------------------------- document


class _Strict(BaseModel):
    # strict: a YAML "2" is not a count and "yes" is not a boolean.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class StageSpec(_Strict):
    """One lifecycle stage. List order is promotion order (environments compare by it)."""

    name: StageName
    description: Text = ""
    single_in_stage: bool = False


class ApprovalSpec(_Strict):
    """How many approvers, holding which role, a transition needs (never the requester)."""

    count: int = Field(default=0, ge=0, le=10)
    role: Annotated[str, AfterValidator(_role)] = "approver"


class TransitionSpec(_Strict):
    """An allowed move between two stages, with its checks and approvals."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    from_: StageName = Field(alias="from")
    to: StageName
    description: Text = ""
    checks: list[CheckName] = Field(default_factory=list, max_length=50)
    approvals: ApprovalSpec = ApprovalSpec()
    archive_superseded: bool = False


class EnvironmentSpec(_Strict):
    """A place where models serve, and the lowest stage a version needs to serve there."""

    name: Annotated[str, AfterValidator(_env_name)]
    min_stage: StageName
    description: Text = ""


class PolicyDocument(_Strict):
    """The whole policy document, as written."""

    format: Literal[1] = 1
    description: Text = ""
    stages: list[Annotated[StageSpec, BeforeValidator(_stage_shorthand)]] = Field(
        min_length=2, max_length=32)
    # Where superseded versions go. Left out: "archived" when there is such a stage.
    archive_stage: StageName | None = None
    transitions: list[TransitionSpec] = Field(default_factory=list, max_length=500)
    required_metadata: dict[str, dict[str, Any]] = Field(default_factory=dict)
    environments: list[EnvironmentSpec] = Field(default_factory=list, max_length=500)
    protected_aliases: list[Annotated[str, AfterValidator(_alias_name)]] = Field(
        default_factory=list, max_length=200)
    review_intervals: dict[
        Literal["low", "medium", "high", "critical"],
        Annotated[int, Field(ge=1, le=36500)] | None,
    ] = Field(default_factory=dict)


# --------------------------------------------------------------------------- policy


def required_paths(schema: Any, prefix: str = "") -> list[str]:
    """Dotted paths a JSON Schema requires: ``required`` lists, followed into ``properties``
    and ``allOf``. Used to compare stages and to tell the registry what registration needs."""
    out: list[str] = []
    if not isinstance(schema, dict):
        return out
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    required = schema.get("required")
    for name in required if isinstance(required, list) else []:
        if not isinstance(name, str):
            continue
        out.append(prefix + name)
        out.extend(required_paths(props.get(name), f"{prefix}{name}."))
    all_of = schema.get("allOf")
    for sub in all_of if isinstance(all_of, list) else []:
        out.extend(required_paths(sub, prefix))
    return list(dict.fromkeys(out))


def metadata_subject(
    provenance: Mapping[str, Any],
    *,
    owner_team: str | None,
    risk_tier: str | None,
    files: Iterable[tuple[str, str]],
) -> dict[str, Any]:
    """The document a stage's JSON Schema is checked against.

    The version's provenance, plus ``owner_team``/``risk_tier`` of its model and
    ``model_card``/``eval_report`` (lists of file paths with that role). Absent or empty
    values are left out, so ``required`` means "present and non-empty".
    """
    subject = {k: v for k, v in provenance.items() if v not in (None, "", {}, [])}
    if owner_team:
        subject["owner_team"] = owner_team
    if risk_tier:
        subject["risk_tier"] = risk_tier
    by_role: dict[str, list[str]] = {}
    for path, role in files:
        by_role.setdefault(role, []).append(path)
    for role in ("model_card", "eval_report"):
        if by_role.get(role):
            subject[role] = sorted(by_role[role])
    return subject


@dataclass(frozen=True, slots=True)
class MetadataReport:
    """Outcome of checking a metadata document against a stage's schema."""

    missing: list[str]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.problems


def _validator(schema: dict[str, Any]) -> Any:
    # Imported here: jsonschema costs ~50 ms of a server's start-up, and a policy
    # without metadata schemas (the default) never needs it.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema)


class Policy:
    """A validated policy with the lookups the services need."""

    def __init__(self, document: PolicyDocument) -> None:
        self.document = document
        self.stages: tuple[str, ...] = tuple(s.name for s in document.stages)
        self._specs = {s.name: s for s in document.stages}
        self._rank = {name: i for i, name in enumerate(self.stages)}
        self._transitions = {(t.from_, t.to): t for t in document.transitions}
        self._validators = {
            stage: _validator(schema) for stage, schema in document.required_metadata.items()
        }
        self._required = {
            stage: required_paths(schema) for stage, schema in document.required_metadata.items()
        }
        self.protected_aliases = frozenset(document.protected_aliases)
        self.archive_stage = resolved_archive_stage(document)

    def has_stage(self, name: str) -> bool:
        return name in self._rank

    def stage(self, name: str) -> StageSpec | None:
        return self._specs.get(name)

    def transition(self, from_stage: str, to_stage: str) -> TransitionSpec | None:
        """The rule allowing ``from_stage → to_stage``, or None when the policy forbids it."""
        return self._transitions.get((from_stage, to_stage))

    def allowed_from(self, stage: str) -> list[str]:
        return [t.to for t in self.document.transitions if t.from_ == stage]

    def required_metadata(self, stage: str) -> list[str]:
        """Dotted fields the stage's schema requires (empty when the stage has none)."""
        return list(self._required.get(stage, []))

    def has_metadata_schema(self, stage: str) -> bool:
        return stage in self._validators

    def check_metadata(self, stage: str, subject: Mapping[str, Any]) -> MetadataReport:
        """Validate ``subject`` (see :func:`metadata_subject`) against the stage's schema."""
        validator = self._validators.get(stage)
        if validator is None:
            return MetadataReport(missing=[], problems=[])
        missing: list[str] = []
        problems: list[str] = []
        for err in sorted(validator.iter_errors(dict(subject)), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in err.absolute_path)
            if err.validator == "required" and isinstance(err.instance, dict):
                for name in err.validator_value:
                    if name not in err.instance:
                        missing.append(f"{where}.{name}" if where else str(name))
            else:
                problems.append(f"{where or 'metadata'}: {err.message}"[:500])
        return MetadataReport(missing=list(dict.fromkeys(missing)), problems=problems[:50])

    def meets_minimum(self, stage: str, minimum: str) -> bool:
        """Whether a version in ``stage`` may serve where ``minimum`` is required.

        Stages compare by their order in the policy; the archive stage meets nothing.
        """
        if stage == self.archive_stage or stage not in self._rank or minimum not in self._rank:
            return False
        return self._rank[stage] >= self._rank[minimum]

    def review_interval(self, risk_tier: str | None) -> timedelta | None:
        if risk_tier is None:
            return None
        days = self.document.review_intervals.get(risk_tier)  # type: ignore[call-overload]
        return timedelta(days=days) if days else None

    def to_json(self) -> dict[str, Any]:
        """The parsed document (defaults filled in), as JSON."""
        out = self.document.model_dump(mode="json", by_alias=True)
        out["archive_stage"] = self.archive_stage
        return out


def resolved_archive_stage(doc: PolicyDocument) -> str | None:
    """The archive stage as written, or "archived" when not written and such a stage exists."""
    if "archive_stage" in doc.model_fields_set:
        return doc.archive_stage
    return "archived" if any(s.name == "archived" for s in doc.stages) else None


# --------------------------------------------------------------------------- loading


def normalize_document(text: str) -> str:
    """The stored form of a policy text: LF line endings, exactly one final newline."""
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip() + "\n"


def document_digest(text: str) -> str:
    """sha256 of the normalised text: two applies of the same text are one policy version."""
    return hashlib.sha256(normalize_document(text).encode("utf-8")).hexdigest()


Path = tuple[str | int, ...]


@dataclass
class _Index:
    lines: dict[Path, int] = field(default_factory=dict)
    problems: list[tuple[int, Path, str]] = field(default_factory=list)


def _field_text(path: Sequence[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else ("." if out else "") + str(p)
    return out


def _measure(node: yaml.Node, depth: int, memo: dict[int, int]) -> int:
    """Expanded node count (anchors and aliases included) with a depth limit."""
    if depth > MAX_DEPTH:
        raise _TooBig(f"the document is nested deeper than {MAX_DEPTH} levels", node)
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a self-referencing alias counts once, not forever
    size = 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _measure(k, depth + 1, memo) + _measure(v, depth + 1, memo)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            size += _measure(item, depth + 1, memo)
    if size > MAX_NODES:
        raise _TooBig(f"the document expands to more than {MAX_NODES} nodes", node)
    memo[id(node)] = size
    return size


class _TooBig(Exception):
    def __init__(self, message: str, node: yaml.Node) -> None:
        super().__init__(message)
        self.message = message
        self.line = node.start_mark.line + 1


def _index(node: yaml.Node, path: Path, out: _Index, seen: set[int]) -> None:
    """Record the line of every path in the document; report duplicate keys."""
    out.lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for k, v in node.value:
            key = str(k.value) if isinstance(k, yaml.ScalarNode) else "?"
            if key in keys and key != "<<":
                out.problems.append((k.start_mark.line + 1, (*path, key),
                                     f"duplicate key {key!r} (the later one would silently win)"))
            keys.add(key)
            out.lines.setdefault((*path, key), k.start_mark.line + 1)
            _index(v, (*path, key), out, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), out, seen)


def _line_of(lines: Mapping[Path, int], path: Sequence[str | int]) -> int:
    p = tuple(path)
    while p:
        if p in lines:
            return lines[p]
        p = p[:-1]
    return lines.get((), 1)


def _invalid(errors: list[dict[str, Any]]) -> Invalid:
    errors = sorted(errors, key=lambda e: (e["line"], e["field"]))[:100]
    first = errors[0]
    where = f"line {first['line']}" + (f", {first['field']}" if first["field"] else "")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return Invalid(f"policy is not valid: {where}: {first['message']}{more}",
                   details={"errors": errors})


def _pydantic_message(err: Mapping[str, Any]) -> str:
    kind = err.get("type")
    loc = err.get("loc") or ()
    last = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        return f"unknown field {last!r}"
    if kind == "missing":
        return f"required field {last!r} is missing"
    msg = str(err.get("msg", "invalid"))
    return msg.removeprefix("Value error, ")[:500]


def load_policy(text: str) -> Policy:
    """Parse and validate a policy document.

    Raises :class:`~regista.errors.Invalid` whose details are
    ``{"errors": [{"line", "field", "message"}, ...]}`` (lines are 1-based).
    """
    if not isinstance(text, str):
        raise _invalid([{"line": 1, "field": "", "message": "a policy must be YAML text"}])
    if len(text.encode("utf-8", "replace")) > MAX_POLICY_BYTES:
        raise _invalid([{"line": 1, "field": "",
                         "message": f"a policy document is at most {MAX_POLICY_BYTES} bytes"}])
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise _invalid([{"line": 1, "field": "", "message": "the policy document is empty"}])
        _measure(root, 0, {})
        index = _Index()
        _index(root, (), index, set())
        data = loader.construct_document(root)
    except _TooBig as exc:
        raise _invalid([{"line": exc.line, "field": "", "message": exc.message}]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        raise _invalid([{"line": line, "field": "",
                         "message": f"not valid YAML: {problem or 'syntax error'}"}]) from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise _invalid([{"line": 1, "field": "",
                         "message": f"not valid YAML: {str(exc)[:300]}"}]) from None
    finally:
        loader.dispose()
    errors = [{"line": line, "field": _field_text(path), "message": msg}
              for line, path, msg in index.problems]
    if not isinstance(data, dict):
        raise _invalid([{"line": 1, "field": "",
                         "message": "the policy document must be a mapping of sections "
                                    "(stages, transitions, required_metadata, ...)"}])
    try:
        document = PolicyDocument.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if isinstance(p, str | int) and p != "[key]")
            message = _pydantic_message(err)
            if err["loc"] and err["loc"][-1] == "[key]":
                message = f"{loc[-1]!r} is not allowed as a key here: {message}"
            errors.append({"line": _line_of(index.lines, loc), "field": _field_text(loc),
                           "message": message})
        raise _invalid(errors) from None
    for path, msg in _problems(document):
        errors.append({"line": _line_of(index.lines, path), "field": _field_text(path),
                       "message": msg})
    if errors:
        raise _invalid(errors)
    return Policy(document)


def _problems(doc: PolicyDocument) -> list[tuple[Path, str]]:
    """The rules that span fields: names that must exist, be unique, or grow by stage."""
    out: list[tuple[Path, str]] = []
    names = [s.name for s in doc.stages]
    known = set(names)
    listing = ", ".join(names)
    for i, name in enumerate(names):
        if name in names[:i]:
            out.append((("stages", i, "name"), f"stage {name!r} is declared twice"))
    if names[0] != REGISTERED:
        out.append((("stages", 0, "name"),
                    f"the first stage must be {REGISTERED!r}: every version starts there"))
    archive = resolved_archive_stage(doc)
    if archive is not None:
        if archive not in known:
            out.append((("archive_stage",), f"archive_stage {archive!r} is not a stage "
                        f"(stages: {listing}); set it to null if there is none"))
        elif archive == REGISTERED:
            out.append((("archive_stage",), f"{REGISTERED!r} cannot be the archive stage"))
        for i, s in enumerate(doc.stages):
            if s.name == archive and s.single_in_stage:
                out.append((("stages", i, "single_in_stage"),
                            "the archive stage cannot hold a single version"))

    pairs: set[tuple[str, str]] = set()
    for i, t in enumerate(doc.transitions):
        for key, stage in (("from", t.from_), ("to", t.to)):
            if stage not in known:
                out.append((("transitions", i, key),
                            f"unknown stage {stage!r} (stages: {listing})"))
        if t.from_ == t.to:
            out.append((("transitions", i, "to"), f"a transition cannot go from {t.to!r} to itself"))
        if (t.from_, t.to) in pairs:
            out.append((("transitions", i), f"transition {t.from_} → {t.to} is declared twice"))
        pairs.add((t.from_, t.to))
        if t.archive_superseded and archive is None:
            out.append((("transitions", i, "archive_superseded"),
                        "archive_superseded needs an archive_stage"))
        if t.archive_superseded and t.to == archive:
            out.append((("transitions", i, "archive_superseded"),
                        "a transition into the archive stage supersedes nothing"))

    out.extend(_metadata_problems(doc, names, known, listing))

    env_names: set[str] = set()
    for i, env in enumerate(doc.environments):
        norm = normalize_name(env.name)
        if norm in env_names:
            out.append((("environments", i, "name"), f"environment {env.name!r} is declared twice"))
        env_names.add(norm)
        if env.min_stage not in known:
            out.append((("environments", i, "min_stage"),
                        f"unknown stage {env.min_stage!r} (stages: {listing})"))
        elif env.min_stage == archive:
            out.append((("environments", i, "min_stage"),
                        "the archive stage cannot be an environment's minimum stage"))
    seen_alias: set[str] = set()
    for i, alias in enumerate(doc.protected_aliases):
        if alias in seen_alias:
            out.append((("protected_aliases", i), f"alias {alias!r} is listed twice"))
        seen_alias.add(alias)
    return out


def _metadata_problems(
    doc: PolicyDocument, names: list[str], known: set[str], listing: str
) -> list[tuple[Path, str]]:
    from jsonschema import Draft202012Validator  # see _validator
    from jsonschema.exceptions import SchemaError

    out: list[tuple[Path, str]] = []
    schemas = doc.required_metadata
    valid: dict[str, list[str]] = {}
    for stage, schema in schemas.items():
        where: Path = ("required_metadata", stage)
        if stage not in known:
            out.append((where, f"unknown stage {stage!r} (stages: {listing})"))
            continue
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            out.append(((*where, *exc.path), f"not a valid JSON Schema: {exc.message}"[:500]))
            continue
        if schema.get("type", "object") != "object":
            out.append(((*where, "type"), "a stage's metadata schema must describe an object"))
            continue
        valid[stage] = required_paths(schema)
    registered = valid.get(REGISTERED, [])
    allowed = PROVENANCE_FIELDS
    for path in registered:
        if path.split(".", 1)[0] not in allowed:
            hint = (" (it is not part of the version's metadata at registration time)"
                    if path.split(".", 1)[0] in SUBJECT_FIELDS else "")
            out.append((("required_metadata", REGISTERED, "required"),
                        f"{path!r} cannot be required at registration{hint}; registration "
                        f"checks provenance fields: {', '.join(sorted(allowed))}"))
    # Requirements only grow along the promotion order (the archive stage is exempt).
    previous: tuple[str, list[str]] | None = None
    for stage in names:
        if stage not in valid or stage == resolved_archive_stage(doc):
            continue
        if previous is not None:
            lost = [p for p in previous[1] if p not in valid[stage]]
            if lost:
                out.append((("required_metadata", stage),
                            f"stage {stage!r} must require everything {previous[0]!r} requires "
                            f"(required fields grow by stage); missing: {', '.join(lost)}"))
        previous = (stage, valid[stage])
    return out


# --------------------------------------------------------------------------- lifecycle records


REQUEST_STATUSES = ("pending", "applied", "rejected", "cancelled", "superseded")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One evaluated check of a transition request."""

    check: str
    passed: bool
    detail: str = ""
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "passed": self.passed, "detail": self.detail}
        if self.missing:
            out["missing"] = list(self.missing)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckResult:
        return cls(check=str(data.get("check", "")), passed=bool(data.get("passed")),
                   detail=str(data.get("detail", "")), missing=list(data.get("missing", [])))


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    approver: str
    decision: str  # approve | reject
    comment: str
    version_digest: str
    at: datetime


@dataclass(frozen=True, slots=True)
class TransitionRequest:
    """"Move version V to stage S", its checks and decisions."""

    id: int
    model: str
    version: int
    version_digest: str
    from_stage: str
    to_stage: str
    justification: str
    status: str
    checks: list[CheckResult]
    policy_version: int
    requested_by: str
    requested_at: datetime
    decided_at: datetime | None
    approvals: list[ApprovalRecord]
    required_approvals: int | None  # None: the current policy no longer allows this move
    approver_role: str | None

    @property
    def ref(self) -> str:
        return f"{self.model}/{self.version}"

    @property
    def checks_passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def approval_count(self) -> int:
        return sum(1 for a in self.approvals if a.decision == "approve")

    def missing(self) -> list[str]:
        """What still stands between a pending request and its application."""
        if self.status != "pending":
            return []
        out = [f"check {c.check}: {c.detail}" if c.detail else f"check {c.check}"
               for c in self.checks if not c.passed]
        if self.required_approvals is None:
            out.append(f"the current policy no longer allows {self.from_stage} → {self.to_stage}")
        elif self.approval_count < self.required_approvals:
            n = self.required_approvals - self.approval_count
            out.append(f"{n} more approval{'s' if n > 1 else ''} from role {self.approver_role}")
        return out


@dataclass(frozen=True, slots=True)
class StageEvent:
    """One move of a version's stage (registration included), with its evidence."""

    from_stage: str | None
    to_stage: str
    at: datetime
    actor: str
    break_glass: bool
    reason: str
    request: TransitionRequest | None = None
