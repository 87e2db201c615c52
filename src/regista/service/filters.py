"""The one search language of Regista, for models and for versions.

A filter goes text → tokens (lexer) → typed AST (recursive-descent parser) → SQLAlchemy
Core expression (compiler, per entity). Values always end up as bound parameters; no
SQL is ever built from strings. Every mistake raises
:class:`~regista.errors.FilterSyntaxError` carrying the 0-based position of the
offending character.

Grammar (keywords are case-insensitive)::

    filter     := or_expr EOF
    or_expr    := and_expr ("OR" and_expr)*
    and_expr   := not_expr ("AND" not_expr)*
    not_expr   := "NOT" not_expr | primary
    primary    := "(" or_expr ")" | comparison
    comparison := FIELD ( ("=" | "!=" | "<" | "<=" | ">" | ">=") value
                        | ["NOT"] ("LIKE" | "ILIKE") value
                        | ["NOT"] "IN" "(" value ("," value)* ")"
                        | "IS" ["NOT"] "NULL" )
    value      := STRING | INTEGER | FLOAT | "TRUE" | "FALSE"
    FIELD      := word ("." (word | STRING))*      e.g. stage, tags.env, tags."my key"

Semantics in one sentence: a comparison (including ``!=``, ``NOT IN`` and ``NOT LIKE``)
holds only when the field has a value that satisfies it; ``NOT term`` is its exact
complement (two-valued logic, no SQL ``NULL`` surprises). ``docs/search.md`` is the
user guide; :func:`field_names` lists the fields of each entity.

Order specifications (``order_by``) share the lexer: :func:`parse_order_by`.
"""

from __future__ import annotations

import enum
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn, TypeGuard

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from regista.domain.names import normalize_name
from regista.errors import FilterSyntaxError
from regista.store.sql.tables import (
    aliases,
    model_tags,
    models,
    version_metrics,
    version_tags,
    versions,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_FILTER_LENGTH",
    "MAX_KEY_LENGTH",
    "MAX_ORDER_KEYS",
    "MAX_TERMS",
    "And",
    "Comparison",
    "Driver",
    "Entity",
    "Expr",
    "FieldRef",
    "InList",
    "IsNull",
    "Literal_",
    "Not",
    "Or",
    "OrderSpec",
    "Segment",
    "SortKey",
    "VersionFilter",
    "compile_filter",
    "compile_model_filter",
    "compile_version_filter",
    "field_names",
    "parse_filter",
    "parse_order_by",
    "plan_version_filter",
]

MAX_FILTER_LENGTH = 4096
"""Longest filter (and order_by) accepted, in characters."""
MAX_DEPTH = 32
"""Deepest nesting of parentheses and ``NOT``."""
MAX_TERMS = 200
"""Most comparisons in one filter; each value of an ``IN`` list counts as one."""
MAX_KEY_LENGTH = 255
"""Longest tag key or metric name (the column width)."""
MAX_ORDER_KEYS = 8
"""Most sort keys in one ``order_by``."""
MAX_JSON_PATH = 32
"""Deepest ``metadata.<path>``."""

Entity = Literal["versions", "models"]
Scalar = str | int | float | bool

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def _shorten(source: str, limit: int = 40) -> str:
    return source if len(source) <= limit else source[: limit - 3] + "..."


def _fail(message: str, position: int, text: str) -> NoReturn:
    raise FilterSyntaxError(message, position=position, filter=text[:MAX_FILTER_LENGTH])


# --------------------------------------------------------------------------- lexer


class TokenKind(enum.Enum):
    FIELD = "field"
    KEYWORD = "keyword"
    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    OP = "operator"
    LPAREN = "'('"
    RPAREN = "')'"
    COMMA = "','"
    EOF = "end of input"


@dataclass(frozen=True, slots=True)
class Segment:
    """One dot-separated part of a field name, as written (``quoted`` for ``"..."``)."""

    text: str
    quoted: bool
    position: int


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str  # the source text of the token
    position: int
    string: str = ""  # STRING: the unescaped value; KEYWORD: upper-case keyword
    number: int | float = 0
    segments: tuple[Segment, ...] = ()


KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE", "TRUE", "FALSE"})
_OPS = ("<=", ">=", "!=", "=", "<", ">")
_WORD_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_WORD_CHARS = _WORD_START | frozenset("0123456789-/:")
_WHITESPACE = frozenset(" \t\r\n")
_NUMBER_RE = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_SIMPLE_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r"}
# Kept with their backslash so LIKE patterns can match a literal % or _.
_LIKE_ESCAPES = frozenset("%_")


def _read_string(text: str, start: int) -> tuple[str, int]:
    """Read the quoted string opening at ``start``; return (value, index after it)."""
    quote = text[start]
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\":
            if i + 1 >= n:
                break
            e = text[i + 1]
            if e in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[e])
                i += 2
            elif e in _LIKE_ESCAPES:
                out.append("\\" + e)
                i += 2
            elif e == "u":
                digits = text[i + 2 : i + 6]
                if len(digits) != 4 or not all(d in "0123456789abcdefABCDEF" for d in digits):
                    _fail("\\u needs four hexadecimal digits", i, text)
                code = int(digits, 16)
                if code == 0 or 0xD800 <= code <= 0xDFFF:
                    _fail("\\u escape of a NUL or surrogate character", i, text)
                out.append(chr(code))
                i += 6
            else:
                _fail(f"unknown escape '\\{e}' in string", i, text)
        elif c == "\0":
            _fail("NUL character in string", i, text)
        else:
            out.append(c)
            i += 1
    _fail("unterminated string", start, text)


def _read_field(text: str, start: int) -> tuple[Token, int]:
    """Read a (possibly dotted, possibly quoted-segment) field name."""
    segments: list[Segment] = []
    n = len(text)
    i = start
    seg_start = i
    while i < n and text[i] in _WORD_CHARS:
        i += 1
    segments.append(Segment(text[seg_start:i], False, seg_start))
    while i < n and text[i] == ".":
        i += 1
        if i < n and text[i] in "\"'":
            value, end = _read_string(text, i)
            segments.append(Segment(value, True, i))
            i = end
            if i < n and (text[i] in _WORD_CHARS):
                _fail("unexpected character after a quoted key", i, text)
            continue
        seg_start = i
        while i < n and text[i] in _WORD_CHARS:
            i += 1
        segments.append(Segment(text[seg_start:i], False, seg_start))
    source = text[start:i]
    if len(segments) == 1 and source.upper() in KEYWORDS:
        return Token(TokenKind.KEYWORD, source, start, string=source.upper()), i
    return Token(TokenKind.FIELD, source, start, segments=tuple(segments)), i


def _read_number(text: str, start: int) -> tuple[Token, int]:
    m = _NUMBER_RE.match(text, start)
    if m is None:
        _fail(f"unexpected character {text[start]!r}", start, text)
    end = m.end()
    if end < len(text) and (text[end] in _WORD_CHARS or text[end] in ".\"'"):
        _fail("malformed number", start, text)
    source = m.group()
    if any(c in source for c in ".eE"):
        value: int | float = float(source)
        if value in (float("inf"), float("-inf")):
            _fail("number out of range", start, text)
        return Token(TokenKind.FLOAT, source, start, number=value), end
    value = int(source)
    if not _INT_MIN <= value <= _INT_MAX:
        _fail("integer out of range (64-bit)", start, text)
    return Token(TokenKind.INTEGER, source, start, number=value), end


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an EOF token."""
    tokens: list[Token] = []
    i = 0
    n = len(text)
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            tokens.append(Token(TokenKind.EOF, "", n))
            return tokens
        c = text[i]
        if c in _WORD_START:
            token, i = _read_field(text, i)
        elif c in "\"'":
            value, end = _read_string(text, i)
            token = Token(TokenKind.STRING, text[i:end], i, string=value)
            i = end
        elif c.isascii() and (c.isdigit() or c in "-."):
            token, i = _read_number(text, i)
        elif c == "(":
            token = Token(TokenKind.LPAREN, c, i)
            i += 1
        elif c == ")":
            token = Token(TokenKind.RPAREN, c, i)
            i += 1
        elif c == ",":
            token = Token(TokenKind.COMMA, c, i)
            i += 1
        else:
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            if op is None:
                _fail(f"unexpected character {c!r}", i, text)
            token = Token(TokenKind.OP, op, i)
            i += len(op)
        tokens.append(token)


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A field as written: ``stage``, ``tags.env``, ``metadata.training_data.uri``."""

    segments: tuple[Segment, ...]
    text: str
    position: int


@dataclass(frozen=True, slots=True)
class Literal_:  # "Literal" is typing's
    """A value as written, already decoded (escapes applied, numbers parsed)."""

    value: Scalar
    text: str
    position: int


@dataclass(frozen=True, slots=True)
class Comparison:
    """``field OP value``; ``op`` is one of ``= != < <= > >= LIKE ILIKE NOT LIKE NOT ILIKE``."""

    field: FieldRef
    op: str
    op_position: int
    value: Literal_


@dataclass(frozen=True, slots=True)
class InList:
    """``field [NOT] IN (v1, v2, ...)``."""

    field: FieldRef
    values: tuple[Literal_, ...]
    negated: bool
    op_position: int


@dataclass(frozen=True, slots=True)
class IsNull:
    """``field IS [NOT] NULL``."""

    field: FieldRef
    negated: bool
    op_position: int


@dataclass(frozen=True, slots=True)
class And:
    terms: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    terms: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    term: Expr
    position: int


Expr = Comparison | InList | IsNull | And | Or | Not
Leaf = Comparison | InList | IsNull


# --------------------------------------------------------------------------- parser


class _Parser:
    """Recursive descent over the token list; depth and term counts are bounded."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0
        self.terms = 0

    # -- helpers
    def peek(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind is not TokenKind.EOF:
            self.index += 1
        return token

    def is_keyword(self, *words: str) -> bool:
        token = self.peek()
        return token.kind is TokenKind.KEYWORD and token.string in words

    def error(self, message: str, token: Token) -> NoReturn:
        if token.kind is TokenKind.EOF:
            message = f"{message}, found the end of the filter"
        else:
            message = f"{message}, found {_shorten(token.text)!r}"
        _fail(message, token.position, self.text)

    def enter(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            _fail(f"filter is nested more than {MAX_DEPTH} levels deep", token.position,
                  self.text)

    def count_term(self, position: int) -> None:
        self.terms += 1
        if self.terms > MAX_TERMS:
            _fail(f"filter has more than {MAX_TERMS} terms", position, self.text)

    # -- grammar
    def parse(self) -> Expr:
        expr = self.or_expr()
        token = self.peek()
        if token.kind is not TokenKind.EOF:
            if token.kind is TokenKind.RPAREN:
                self.error("unbalanced ')'", token)
            self.error("expected AND, OR or the end of the filter", token)
        return expr

    def or_expr(self) -> Expr:
        terms = [self.and_expr()]
        while self.is_keyword("OR"):
            self.advance()
            terms.append(self.and_expr())
        return terms[0] if len(terms) == 1 else Or(tuple(terms))

    def and_expr(self) -> Expr:
        terms = [self.not_expr()]
        while self.is_keyword("AND"):
            self.advance()
            terms.append(self.not_expr())
        return terms[0] if len(terms) == 1 else And(tuple(terms))

    def not_expr(self) -> Expr:
        if self.is_keyword("NOT"):
            token = self.advance()
            self.enter(token)
            term = self.not_expr()
            self.depth -= 1
            return Not(term, token.position)
        return self.primary()

    def primary(self) -> Expr:
        token = self.peek()
        if token.kind is TokenKind.LPAREN:
            self.advance()
            self.enter(token)
            if self.peek().kind is TokenKind.RPAREN:
                _fail("empty parentheses", self.peek().position, self.text)
            expr = self.or_expr()
            closing = self.peek()
            if closing.kind is not TokenKind.RPAREN:
                self.error(f"expected ')' to close the '(' at position {token.position}",
                           closing)
            self.advance()
            self.depth -= 1
            return expr
        if token.kind is TokenKind.FIELD:
            return self.comparison()
        self.error("expected a field name, '(' or NOT", token)

    def comparison(self) -> Expr:
        ftoken = self.advance()
        field = FieldRef(ftoken.segments, ftoken.text, ftoken.position)
        self.count_term(ftoken.position)
        token = self.peek()
        if token.kind is TokenKind.OP:
            self.advance()
            return Comparison(field, token.text, token.position, self.value())
        if token.kind is TokenKind.KEYWORD:
            if token.string in ("LIKE", "ILIKE"):
                self.advance()
                return Comparison(field, token.string, token.position, self.value())
            if token.string == "IN":
                self.advance()
                return self.in_list(field, negated=False, op_position=token.position)
            if token.string == "NOT":
                self.advance()
                nxt = self.peek()
                if nxt.kind is TokenKind.KEYWORD and nxt.string in ("LIKE", "ILIKE"):
                    self.advance()
                    return Comparison(field, f"NOT {nxt.string}", token.position, self.value())
                if nxt.kind is TokenKind.KEYWORD and nxt.string == "IN":
                    self.advance()
                    return self.in_list(field, negated=True, op_position=token.position)
                self.error("expected IN, LIKE or ILIKE after NOT", nxt)
            if token.string == "IS":
                self.advance()
                negated = False
                if self.is_keyword("NOT"):
                    self.advance()
                    negated = True
                if not self.is_keyword("NULL"):
                    self.error("expected NULL after IS" + (" NOT" if negated else ""),
                               self.peek())
                self.advance()
                return IsNull(field, negated, token.position)
        self.error(f"expected an operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, IS) after "
                   f"{field.text!r}", token)

    def in_list(self, field: FieldRef, *, negated: bool, op_position: int) -> InList:
        token = self.peek()
        if token.kind is not TokenKind.LPAREN:
            self.error("expected '(' after IN", token)
        self.advance()
        if self.peek().kind is TokenKind.RPAREN:
            _fail("empty parentheses: IN needs at least one value", self.peek().position,
                  self.text)
        values = [self.value()]
        while self.peek().kind is TokenKind.COMMA:
            self.advance()
            self.count_term(self.peek().position)
            values.append(self.value())
        closing = self.peek()
        if closing.kind is not TokenKind.RPAREN:
            self.error("expected ',' or ')' in the IN list", closing)
        self.advance()
        return InList(field, tuple(values), negated, op_position)

    def value(self) -> Literal_:
        token = self.peek()
        if token.kind is TokenKind.STRING:
            self.advance()
            return Literal_(token.string, token.text, token.position)
        if token.kind in (TokenKind.INTEGER, TokenKind.FLOAT):
            self.advance()
            return Literal_(token.number, token.text, token.position)
        if token.kind is TokenKind.KEYWORD and token.string in ("TRUE", "FALSE"):
            self.advance()
            return Literal_(token.string == "TRUE", token.text, token.position)
        if token.kind is TokenKind.FIELD:
            self.error("expected a value (strings need quotes)", token)
        self.error("expected a value (a quoted string, a number, true or false)", token)


def _check_length(text: str) -> None:
    if len(text) > MAX_FILTER_LENGTH:
        _fail(f"longer than {MAX_FILTER_LENGTH} characters", MAX_FILTER_LENGTH, text)


def parse_filter(text: str) -> Expr | None:
    """Parse a filter into its AST; ``None`` for an empty (or blank) filter.

    Only syntax is checked here; fields and value types are checked by
    :func:`compile_filter`, which knows the entity.
    """
    _check_length(text)
    if not text.strip():
        return None
    return _Parser(text).parse()


# --------------------------------------------------------------------------- SQL helpers


class _JsonKind(FunctionElement[str]):
    """The JSON type at a path, the same on both databases.

    ``'number'``, ``'string'``, ``'boolean'`` or something else (``'other'``,
    ``'null'``, ``'object'``, ``'array'``); never SQL NULL, so guards stay two-valued.
    """

    type = sa.String()
    name = "regista_json_kind"
    inherit_cache = True


@compiles(_JsonKind)
def _json_kind_unsupported(element: _JsonKind, compiler: SQLCompiler, **kw: Any) -> str:
    raise sa.exc.CompileError(
        f"metadata filters support SQLite and PostgreSQL, not {compiler.dialect.name}")


@compiles(_JsonKind, "sqlite")
def _json_kind_sqlite(element: _JsonKind, compiler: SQLCompiler, **kw: Any) -> str:
    column, path = element.clauses.clauses
    return (
        f"CASE json_type({compiler.process(column, **kw)}, {compiler.process(path, **kw)}) "
        "WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' WHEN 'text' THEN 'string' "
        "WHEN 'true' THEN 'boolean' WHEN 'false' THEN 'boolean' ELSE 'other' END"
    )


@compiles(_JsonKind, "postgresql")
def _json_kind_postgresql(element: _JsonKind, compiler: SQLCompiler, **kw: Any) -> str:
    column, path = element.clauses.clauses
    return (
        f"coalesce(jsonb_typeof({compiler.process(column, **kw)} #> "
        f"{compiler.process(path, **kw)}), 'other')"
    )


class _CaseSensitiveLike(FunctionElement[bool]):
    """``column LIKE pattern ESCAPE '\\'``, case-sensitive on every database.

    SQLite's LIKE ignores ASCII case, so there the pattern runs as the equivalent GLOB.
    Arguments: column, LIKE pattern, GLOB pattern (both bound).
    """

    type = sa.Boolean()
    name = "regista_like"
    inherit_cache = True


@compiles(_CaseSensitiveLike)
def _like_default(element: _CaseSensitiveLike, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern, _ = element.clauses.clauses
    assert isinstance(column, ColumnElement) and isinstance(pattern, ColumnElement)
    return "(" + compiler.process(column.like(pattern, escape="\\"), **kw) + ")"


@compiles(_CaseSensitiveLike, "sqlite")
def _like_sqlite(element: _CaseSensitiveLike, compiler: SQLCompiler, **kw: Any) -> str:
    column, _, pattern = element.clauses.clauses
    return f"({compiler.process(column, **kw)} GLOB {compiler.process(pattern, **kw)})"


def _like_to_glob(pattern: str) -> str:
    """Translate a LIKE pattern (``%``, ``_``, backslash escapes) into a GLOB pattern."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 1
            c = pattern[i]
            out.append(f"[{c}]" if c in "*?[" else c)
        elif c == "%":
            out.append("*")
        elif c == "_":
            out.append("?")
        else:
            out.append(f"[{c}]" if c in "*?[" else c)
        i += 1
    return "".join(out)


def _like(column: ColumnElement[Any], pattern: str) -> ColumnElement[bool]:
    return _CaseSensitiveLike(
        column,
        sa.literal(pattern, sa.String()),
        sa.literal(_like_to_glob(pattern), sa.String()),
    )


# --------------------------------------------------------------------------- field model


class FieldType(enum.Enum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    TIMESTAMP = "timestamp"
    BOOLEAN = "boolean"
    JSON = "JSON value"


_ORDERING_OPS = ("=", "!=", "<", "<=", ">", ">=")
_ALLOWED_OPS: dict[FieldType, frozenset[str]] = {
    FieldType.STRING: frozenset(_ORDERING_OPS) | {"LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"},
    FieldType.INTEGER: frozenset(_ORDERING_OPS),
    FieldType.NUMBER: frozenset(_ORDERING_OPS),
    FieldType.TIMESTAMP: frozenset(_ORDERING_OPS),
    FieldType.BOOLEAN: frozenset({"=", "!="}),
}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True, slots=True)
class _Column:
    """A field that is a column (of the searched table, or of a related one)."""

    column: ColumnElement[Any]
    type: FieldType
    nullable: bool = False
    normalize: Callable[[str], str] | None = None  # applied to =, !=, <, IN values
    like_column: ColumnElement[Any] | None = None  # LIKE/ILIKE match this one instead


@dataclass(frozen=True, slots=True)
class _Related:
    """A field held in another table, tested as a semi-join (never a row-multiplying join).

    ``outer`` (a column of the searched table) is matched against ``link`` (of the
    related table) under the fixed conditions ``where`` (e.g. the tag key).
    ``to_one``: the relation has exactly one row (IS NULL tests the column); otherwise
    IS NULL means "no such row". ``correlated``: use a correlated EXISTS for positive
    tests (best when it can seek an index on ``link``); else ``outer IN (SELECT link ...)``
    (best when ``where`` can seek an index, e.g. tags by key and value).
    """

    outer: ColumnElement[Any]
    table: sa.Table
    link: ColumnElement[Any]
    where: tuple[ColumnElement[bool], ...]
    value: _Column
    to_one: bool = False
    correlated: bool = False

    @property
    def type(self) -> FieldType:
        return self.value.type

    @property
    def per_version(self) -> bool:
        """Rows keyed by the version (tags, metrics, aliases), not by its model."""
        return self.outer is versions.c.id


@dataclass(frozen=True, slots=True)
class _Json:
    """A value inside versions.provenance, typed by the literal it is compared with."""

    column: ColumnElement[Any]
    path: tuple[str | int, ...]

    @property
    def type(self) -> FieldType:
        return FieldType.JSON


_Target = _Column | _Related | _Json


def _version_fields() -> dict[str, _Target]:
    v, m = versions.c, models.c
    model_name = _Related(
        v.model_id, models, m.id, (),
        _Column(m.normalized_name, FieldType.STRING, normalize=normalize_name,
                like_column=m.name),
        to_one=True,
    )

    def model_column(column: ColumnElement[Any]) -> _Related:
        return _Related(v.model_id, models, m.id, (),
                        _Column(column, FieldType.STRING, nullable=True), to_one=True)

    return {
        "name": model_name,
        "model": model_name,
        "model.name": model_name,
        "version": _Column(v.number, FieldType.INTEGER),
        "number": _Column(v.number, FieldType.INTEGER),
        "stage": _Column(v.stage, FieldType.STRING),
        "digest": _Column(v.digest, FieldType.STRING),
        "creator": _Column(v.created_by, FieldType.STRING),
        "created_by": _Column(v.created_by, FieldType.STRING),
        "created_at": _Column(v.created_at, FieldType.TIMESTAMP),
        "description": _Column(v.description, FieldType.STRING),
        "framework": _Column(v.framework, FieldType.STRING, nullable=True),
        "alias": _Related(v.id, aliases, aliases.c.version_id, (),
                          _Column(aliases.c.name, FieldType.STRING)),
        "model.owner_team": model_column(m.owner_team),
        "model.team": model_column(m.owner_team),
        "model.risk_tier": model_column(m.risk_tier),
    }


def _model_fields() -> dict[str, _Target]:
    m = models.c
    return {
        "name": _Column(m.normalized_name, FieldType.STRING, normalize=normalize_name,
                        like_column=m.name),
        "owner_team": _Column(m.owner_team, FieldType.STRING, nullable=True),
        "team": _Column(m.owner_team, FieldType.STRING, nullable=True),
        "risk_tier": _Column(m.risk_tier, FieldType.STRING, nullable=True),
        "description": _Column(m.description, FieldType.STRING),
        "created_at": _Column(m.created_at, FieldType.TIMESTAMP),
        "updated_at": _Column(m.updated_at, FieldType.TIMESTAMP),
        "created_by": _Column(m.created_by, FieldType.STRING),
        "creator": _Column(m.created_by, FieldType.STRING),
        "archived": _Column(m.archived, FieldType.BOOLEAN),
        # Correlated: (model_id, stage) and (model_id, name) indexes make these seeks.
        "stage": _Related(m.id, versions, versions.c.model_id, (),
                          _Column(versions.c.stage, FieldType.STRING), correlated=True),
        "alias": _Related(m.id, aliases, aliases.c.model_id, (),
                          _Column(aliases.c.name, FieldType.STRING), correlated=True),
    }


_VERSION_FIELDS = _version_fields()
_MODEL_FIELDS = _model_fields()


def _model_name_field() -> _Related:
    field = _VERSION_FIELDS["name"]
    assert isinstance(field, _Related)
    return field


_MODEL_NAME = _model_name_field()  # name, model and model.name: the same object

_KEYED_FIELDS: dict[Entity, tuple[str, ...]] = {
    "versions": ("tags.<key>", "metrics.<name>", "metadata.<path>", "provenance.<path>",
                 "model.tags.<key>"),
    "models": ("tags.<key>",),
}


def field_names(entity: Entity) -> list[str]:
    """Every field a filter on ``entity`` may use (keyed ones as ``tags.<key>``)."""
    simple = _VERSION_FIELDS if entity == "versions" else _MODEL_FIELDS
    return sorted(simple) + list(_KEYED_FIELDS[entity])


def _end_of(ref: FieldRef) -> int:
    return ref.position + len(ref.text)


def _key(ref: FieldRef, rest: tuple[Segment, ...], what: str, text: str) -> str:
    """The tag key / metric name after ``tags.`` / ``metrics.``."""
    if not rest or (len(rest) == 1 and not rest[0].quoted and not rest[0].text):
        _fail(f"missing {what} after {ref.text!r}", _end_of(ref), text)
    if len(rest) == 1 and rest[0].quoted:
        key = rest[0].text
        if not key:
            _fail(f"empty {what}", rest[0].position, text)
    else:
        for seg in rest:
            if seg.quoted:
                _fail(f"quote the whole {what}, not a part of it", seg.position, text)
        key = ".".join(seg.text for seg in rest)
    if len(key) > MAX_KEY_LENGTH:
        _fail(f"{what} is longer than {MAX_KEY_LENGTH} characters", rest[0].position, text)
    return key


def _json_path(ref: FieldRef, rest: tuple[Segment, ...], text: str) -> tuple[str | int, ...]:
    if not rest or (len(rest) == 1 and not rest[0].quoted and not rest[0].text):
        _fail(f"missing path after {ref.text!r}", _end_of(ref), text)
    if len(rest) > MAX_JSON_PATH:
        _fail(f"path is deeper than {MAX_JSON_PATH}", rest[MAX_JSON_PATH].position, text)
    path: list[str | int] = []
    for seg in rest:
        if not seg.text:
            _fail("empty path component", seg.position, text)
        if seg.quoted:
            # SQLite JSON paths cannot express a double quote inside a key.
            if '"' in seg.text:
                _fail('a path component may not contain \'"\'', seg.position, text)
            path.append(seg.text)
        elif seg.text.isdigit():
            if len(seg.text) > 9:
                _fail("array index out of range", seg.position, text)
            path.append(int(seg.text))
        else:
            path.append(seg.text)
    return tuple(path)


def _resolve(ref: FieldRef, entity: Entity, text: str) -> _Target:
    """Map a field reference onto what it tests, or fail at the field's position."""
    segs = ref.segments
    head = segs[0].text.lower()
    rest = segs[1:]
    if entity == "versions":
        if head == "tags" and rest:
            key = _key(ref, rest, "tag key", text)
            return _Related(versions.c.id, version_tags, version_tags.c.version_id,
                            (version_tags.c.key == key,),
                            _Column(version_tags.c.value, FieldType.STRING))
        if head == "metrics" and rest:
            name = _key(ref, rest, "metric name", text)
            return _Related(versions.c.id, version_metrics, version_metrics.c.version_id,
                            (version_metrics.c.name == name,),
                            _Column(version_metrics.c.value, FieldType.NUMBER))
        if head in ("metadata", "provenance") and rest:
            return _Json(versions.c.provenance, _json_path(ref, rest, text))
        if (head == "model" and len(rest) >= 2 and not rest[0].quoted
                and rest[0].text.lower() == "tags"):
            key = _key(ref, rest[1:], "tag key", text)
            return _Related(versions.c.model_id, model_tags, model_tags.c.model_id,
                            (model_tags.c.key == key,),
                            _Column(model_tags.c.value, FieldType.STRING))
        fields = _VERSION_FIELDS
    else:
        if head == "tags" and rest:
            key = _key(ref, rest, "tag key", text)
            return _Related(models.c.id, model_tags, model_tags.c.model_id,
                            (model_tags.c.key == key,),
                            _Column(model_tags.c.value, FieldType.STRING))
        fields = _MODEL_FIELDS
    if not any(seg.quoted for seg in segs):
        target = fields.get(ref.text.lower())
        if target is not None:
            return target
    _fail(f"unknown field {ref.text!r} for {entity}; known fields: "
          f"{', '.join(field_names(entity))}", ref.position, text)


# --------------------------------------------------------------------------- compiler


def _parse_timestamp(lit: Literal_, text: str) -> datetime:
    if not isinstance(lit.value, str):
        _fail(f"expected an ISO-8601 timestamp in quotes, not {lit.text}", lit.position, text)
    try:
        value = datetime.fromisoformat(lit.value)
    except ValueError:
        _fail(f"{lit.text} is not an ISO-8601 timestamp", lit.position, text)
    if value.tzinfo is None or value.utcoffset() is None:
        _fail(f"timestamp {lit.text} needs a timezone (e.g. Z or +02:00)", lit.position, text)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        _fail(f"timestamp {lit.text} is out of range", lit.position, text)


def _describe(value: Scalar) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    return "a string"


def _check_like_pattern(lit: Literal_, text: str) -> str:
    assert isinstance(lit.value, str)
    pattern = lit.value
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            if i + 1 >= len(pattern):
                _fail("LIKE pattern ends with an escape character", lit.position, text)
            i += 1
        i += 1
    return pattern


class _Compiler:
    """Turns one parsed filter into a SQLAlchemy boolean expression for one entity.

    ``NOT`` is pushed down to the leaves (De Morgan), so negated relation tests become
    ``NOT EXISTS`` (an anti-join) instead of ``NOT IN (subquery)``.

    Positive tests of a version's tags, metrics and aliases take one of two shapes:
    ``versions.id IN (SELECT version_id ...)`` (the subquery seeks its own index and can
    drive the query; the default) or, with ``walk``, a correlated ``EXISTS`` checked row
    by row while the query walks the index of its sort order. ``driver`` (a node of the
    tree) keeps the ``IN`` shape under ``walk``: the plan starts from that term.
    """

    def __init__(self, text: str, entity: Entity, *, walk: bool = False,
                 driver: Expr | None = None) -> None:
        self.text = text
        self.entity = entity
        self.walk = walk
        self.driver = driver
        self._in_driver = False

    def fail(self, message: str, position: int) -> NoReturn:
        _fail(message, position, self.text)

    def compile(self, node: Expr, negate: bool = False) -> ColumnElement[bool]:
        if node is self.driver and not self._in_driver:
            self._in_driver = True
            try:
                return self.compile(node, negate)
            finally:
                self._in_driver = False
        if isinstance(node, Not):
            return self.compile(node.term, not negate)
        if isinstance(node, And | Or):
            parts = [self.compile(term, negate) for term in node.terms]
            conjunction = isinstance(node, And) != negate
            return sa.and_(*parts) if conjunction else sa.or_(*parts)
        return self.leaf(node, negate)

    # -- values
    def coerce(self, lit: Literal_, ftype: FieldType, field: FieldRef) -> Any:
        value = lit.value
        if ftype is FieldType.TIMESTAMP:
            return _parse_timestamp(lit, self.text)
        ok = {
            FieldType.STRING: isinstance(value, str),
            FieldType.INTEGER: isinstance(value, int) and not isinstance(value, bool),
            FieldType.NUMBER: isinstance(value, int | float) and not isinstance(value, bool),
            FieldType.BOOLEAN: isinstance(value, bool),
        }[ftype]
        if not ok:
            self.fail(f"{field.text} is {_article(ftype.value)} field; {lit.text} is "
                      f"{_describe(value)}", lit.position)
        return value

    def check_op(self, op: str, ftype: FieldType, field: FieldRef, position: int) -> None:
        if op not in _ALLOWED_OPS[ftype]:
            self.fail(f"{op} cannot be used on {field.text} ({_article(ftype.value)} field)",
                      position)

    # -- leaves
    def leaf(self, node: Leaf, negate: bool) -> ColumnElement[bool]:
        target = _resolve(node.field, self.entity, self.text)
        if isinstance(target, _Json):
            expr = self.json_leaf(target, node)
            return sa.not_(expr) if negate else expr
        if isinstance(target, _Column):
            expr = self.column_condition(target, node)
            if target.nullable and not isinstance(node, IsNull):
                # Two-valued: a comparison is false (not unknown) on a missing value.
                expr = sa.and_(target.column.is_not(None), expr)
            return sa.not_(expr) if negate else expr
        return self.related_leaf(target, node, negate)

    def column_condition(self, target: _Column, node: Leaf) -> ColumnElement[bool]:
        """The test on the column itself (no NULL guard)."""
        column, ftype = target.column, target.type
        if isinstance(node, IsNull):
            return column.is_not(None) if node.negated else column.is_(None)
        if isinstance(node, InList):
            self.check_op("=", ftype, node.field, node.op_position)
            values = [self.coerce(v, ftype, node.field) for v in node.values]
            if target.normalize is not None:
                values = [target.normalize(v) for v in values]
            return column.not_in(values) if node.negated else column.in_(values)
        self.check_op(node.op, ftype, node.field, node.op_position)
        value = self.coerce(node.value, ftype, node.field)
        if node.op in _COMPARE:
            if target.normalize is not None:
                value = target.normalize(value)
            result: ColumnElement[bool] = _COMPARE[node.op](column, value)
            return result
        return self.like(target.like_column if target.like_column is not None else column,
                         node)

    def like(self, column: ColumnElement[Any], node: Comparison) -> ColumnElement[bool]:
        pattern = _check_like_pattern(node.value, self.text)
        if node.op == "LIKE":
            return _like(column, pattern)
        if node.op == "NOT LIKE":
            return sa.not_(_like(column, pattern))
        if node.op == "ILIKE":
            return column.ilike(pattern, escape="\\")
        return column.not_ilike(pattern, escape="\\")

    def related_leaf(self, target: _Related, node: Leaf, negate: bool) -> ColumnElement[bool]:
        if isinstance(node, IsNull) and not target.to_one:
            # On a one-to-many field, IS NULL means "no such row at all".
            wants_row = node.negated  # IS NOT NULL
            return self.membership(target, (), wants_row != negate)
        condition = self.column_condition(target.value, node)
        if target is _MODEL_NAME and not negate and _single_equality(node):
            # The name is unique: "model_id = (SELECT id ...)" is one value known before
            # the scan, so the (model_id, created_at) and (model_id, number) indexes give
            # the page in order. A missing model gives NULL: no row, as it should (the
            # negated form keeps NOT IN, true for every row when there is no such model).
            sub = sa.select(target.link).where(*target.where, condition).scalar_subquery()
            return target.outer == sub
        return self.membership(target, (condition,), not negate)

    def relation_ids(self, node: Leaf) -> sa.Select[Any] | None:
        """``SELECT version_id ...`` of a positive, index-backed test of a version's tag,
        metric or alias (``tags.env = "prod"``, ``metrics.auc > 0.9``, ``alias IN (...)``);
        ``None`` for any other term."""
        if isinstance(node, IsNull) or (isinstance(node, InList) and node.negated):
            return None
        if isinstance(node, Comparison) and node.op not in ("=", "<", "<=", ">", ">="):
            return None
        target = _resolve(node.field, self.entity, self.text)
        if not isinstance(target, _Related) or not target.per_version:
            return None
        condition = self.column_condition(target.value, node)
        return sa.select(target.link).where(*target.where, condition)

    def membership(self, target: _Related, conditions: tuple[ColumnElement[bool], ...],
                   positive: bool) -> ColumnElement[bool]:
        where = (*target.where, *conditions)
        walking = self.walk and not self._in_driver and target.per_version
        if positive and not target.correlated and not walking:
            # Uncorrelated: the subquery seeks its own index (e.g. tags by key, value).
            sub = sa.select(target.link).where(*where).correlate(None)
            return target.outer.in_(sub)
        exists = (
            sa.select(sa.literal_column("1"))
            .where(target.link == target.outer, *where)
            .correlate_except(target.table)
            .exists()
        )
        return exists if positive else sa.not_(exists)

    def json_leaf(self, target: _Json, node: Leaf) -> ColumnElement[bool]:
        element = target.column[target.path]
        assert isinstance(element, sa.BinaryExpression)
        if isinstance(node, IsNull):
            # NULL both when the path is absent and when it holds JSON null.
            absent: ColumnElement[bool] = element.as_string().is_(None)
            return sa.not_(absent) if node.negated else absent
        kind = _JsonKind(element.left, element.right)  # the column and the bound path
        literals = node.values if isinstance(node, InList) else (node.value,)
        first = literals[0].value
        for lit in literals[1:]:
            if _json_family(lit.value) != _json_family(first):
                self.fail(f"IN list mixes {_describe(first)} and {_describe(lit.value)}",
                          lit.position)
        family = _json_family(first)
        op = "=" if isinstance(node, InList) else node.op
        if family == "boolean":
            if op not in ("=", "!="):
                self.fail("true/false can only be compared with = or !=", node.op_position)
            value_expr: ColumnElement[Any] = sa.case((kind == "boolean", element.as_boolean()))
        elif family == "number":
            if op not in _ORDERING_OPS:
                self.fail(f"{op} needs a string value, not {literals[0].text}",
                          literals[0].position)
            # CASE keeps PostgreSQL from casting non-numbers (AND has no evaluation order).
            value_expr = sa.case((kind == "number", element.as_float()))
        else:
            value_expr = element.as_string()
        guard = kind == family
        test: ColumnElement[bool]
        if isinstance(node, InList):
            values = [lit.value for lit in node.values]
            test = value_expr.not_in(values) if node.negated else value_expr.in_(values)
        elif node.op in _COMPARE:
            test = _COMPARE[node.op](value_expr, node.value.value)
        else:
            test = self.like(value_expr, node)
        return sa.and_(guard, test)


def _positive_equality(node: Expr) -> TypeGuard[Comparison | InList]:
    """``field = value`` or ``field IN (...)``."""
    if isinstance(node, Comparison):
        return node.op == "="
    return isinstance(node, InList) and not node.negated


def _single_equality(node: Expr) -> bool:
    """``field = value`` or ``field IN (value)``: equal to one value."""
    return _positive_equality(node) and (isinstance(node, Comparison) or len(node.values) == 1)


def _json_family(value: Scalar) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _article(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def compile_filter(text: str | None, *, entity: Entity) -> ColumnElement[bool] | None:
    """Compile a filter for ``entity`` (``"versions"`` or ``"models"``).

    Returns a boolean SQLAlchemy expression over the ``versions`` (or ``models``) table,
    to use in ``WHERE``, or ``None`` when the filter is empty. Raises
    :class:`~regista.errors.FilterSyntaxError` for any mistake, with its position.
    """
    if text is None:
        return None
    tree = parse_filter(text)
    if tree is None:
        return None
    return _Compiler(text, entity).compile(tree)


@dataclass(frozen=True, slots=True)
class Driver:
    """A top-level term of a version filter that can list its matches from an index: a
    positive test of a tag, metric or alias (``tags.env = "prod"``, ``metrics.auc > 0.9``),
    or an ``OR`` of such tests.

    ``ids`` holds one ``SELECT version_id ...`` per test (an id may be in several).
    """

    node: Expr
    ids: tuple[sa.Select[Any], ...]


@dataclass(frozen=True, slots=True)
class VersionFilter:
    """A checked version filter, ready to compile in the shape a search plan chooses.

    ``walk`` is the filter with every test of a tag, metric or alias as a correlated
    ``EXISTS``: the query walks the index of its sort order and checks each row, stopping
    once the page is full. ``drivers`` are the top-level terms a plan may start from
    instead (:meth:`seek`). ``models`` are conditions on ``models`` from the top-level
    ``name = ...`` and ``name IN (...)`` terms: every match belongs to a model each selects.
    """

    text: str
    tree: Expr
    walk: ColumnElement[bool]
    drivers: tuple[Driver, ...]
    models: tuple[ColumnElement[bool], ...]

    def seek(self, driver: Driver) -> ColumnElement[bool]:
        """The filter with ``driver`` as ``versions.id IN (SELECT ...)`` (the query starts
        from its index, then sorts the matches) and every other test as in :attr:`walk`."""
        return _Compiler(self.text, "versions", walk=True, driver=driver.node).compile(self.tree)


def _terms(node: Expr, kind: type[And] | type[Or]) -> Iterator[Expr]:
    """The terms of a (nested) AND or OR; a single term otherwise."""
    if isinstance(node, kind):
        for term in node.terms:
            yield from _terms(term, kind)
    else:
        yield node


def plan_version_filter(text: str | None) -> VersionFilter | None:
    """Check a version filter and prepare its plan shapes (see :class:`VersionFilter`).

    ``None`` for an empty filter. Raises :class:`~regista.errors.FilterSyntaxError` like
    :func:`compile_filter`, and for the same filters.
    """
    if text is None:
        return None
    tree = parse_filter(text)
    if tree is None:
        return None
    compiler = _Compiler(text, "versions", walk=True)
    walk = compiler.compile(tree)  # checks every field, operator and value first
    drivers: list[Driver] = []
    names: list[ColumnElement[bool]] = []
    for term in _terms(tree, And):
        tests = list(_terms(term, Or))
        ids = [compiler.relation_ids(t) for t in tests if isinstance(t, Comparison | InList)]
        if len(ids) == len(tests) and all(i is not None for i in ids):
            drivers.append(Driver(term, tuple(i for i in ids if i is not None)))
        if _positive_equality(term) and _resolve(term.field, "versions", text) is _MODEL_NAME:
            names.append(compiler.column_condition(_MODEL_NAME.value, term))
    return VersionFilter(text, tree, walk, tuple(drivers), tuple(names))


def compile_version_filter(text: str | None) -> ColumnElement[bool] | None:
    """:func:`compile_filter` for versions."""
    return compile_filter(text, entity="versions")


def compile_model_filter(text: str | None) -> ColumnElement[bool] | None:
    """:func:`compile_filter` for models."""
    return compile_filter(text, entity="models")


# --------------------------------------------------------------------------- order_by


@dataclass(frozen=True, slots=True)
class SortKey:
    """One sort key: ``field`` is canonical (``number``, not ``version``)."""

    field: str
    descending: bool
    metric: str | None = None  # for field == "metrics"

    @property
    def label(self) -> str:
        if self.metric is None:
            return self.field
        if self.metric and all(c in _WORD_CHARS or c == "." for c in self.metric):
            return f"metrics.{self.metric}"
        escaped = self.metric.replace("\\", "\\\\").replace('"', '\\"')
        return f'metrics."{escaped}"'


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """A parsed ``order_by``; the unique tiebreaker (id) is implied, not listed."""

    entity: Entity
    keys: tuple[SortKey, ...]

    def canonical(self) -> str:
        """A stable text form (``created_at desc,metrics.auc asc``), e.g. for cursors."""
        return ",".join(f"{k.label} {'desc' if k.descending else 'asc'}" for k in self.keys)


_SORT_FIELDS: Mapping[Entity, Mapping[str, str]] = {
    "versions": {"created_at": "created_at", "number": "number", "version": "number",
                 "name": "name", "model": "name", "stage": "stage"},
    "models": {"name": "name", "created_at": "created_at", "updated_at": "updated_at"},
}
_DEFAULT_ORDER: Mapping[Entity, SortKey] = {
    "versions": SortKey("created_at", descending=True),
    "models": SortKey("name", descending=False),
}


def parse_order_by(text: str | None, *, entity: Entity) -> OrderSpec:
    """Parse ``field [ASC|DESC], ...``; ``None`` or blank gives the entity's default.

    Versions sort by ``created_at``, ``number``/``version``, ``name``, ``stage`` or
    ``metrics.<name>`` (versions without the metric last, in both directions); models by
    ``name``, ``created_at`` or ``updated_at``. Defaults: versions ``created_at DESC``,
    models ``name ASC``. Mistakes raise :class:`~regista.errors.FilterSyntaxError`.
    """
    if text is None or not text.strip():
        return OrderSpec(entity, (_DEFAULT_ORDER[entity],))
    _check_length(text)
    try:
        tokens = tokenize(text)
    except FilterSyntaxError as exc:
        reason = exc.message.rsplit(" at position ", 1)[0]
        raise FilterSyntaxError(f"order_by: {reason}", position=exc.position,
                                filter=text) from None
    allowed = _SORT_FIELDS[entity]
    keys: list[SortKey] = []
    seen: set[tuple[str, str | None]] = set()
    i = 0

    def fail(message: str, token: Token) -> NoReturn:
        found = "the end" if token.kind is TokenKind.EOF else repr(token.text)
        _fail(f"order_by: {message}, found {found}", token.position, text)

    while True:
        token = tokens[i]
        if token.kind is not TokenKind.FIELD:
            fail("expected a sort key", token)
        ref = FieldRef(token.segments, token.text, token.position)
        head = token.segments[0].text.lower()
        if entity == "versions" and head == "metrics" and len(token.segments) > 1:
            key = SortKey("metrics", False, _key(ref, token.segments[1:], "metric name", text))
        elif not any(s.quoted for s in token.segments) and token.text.lower() in allowed:
            key = SortKey(allowed[token.text.lower()], False)
        else:
            choices = sorted(allowed) + (["metrics.<name>"] if entity == "versions" else [])
            _fail(f"order_by: cannot sort {entity} by {token.text!r}; choose from "
                  f"{', '.join(choices)}", token.position, text)
        i += 1
        direction = tokens[i]
        if direction.kind is TokenKind.FIELD and direction.text.upper() in ("ASC", "DESC"):
            key = SortKey(key.field, direction.text.upper() == "DESC", key.metric)
            i += 1
        if (key.field, key.metric) in seen:
            _fail(f"order_by: {token.text!r} is listed twice", token.position, text)
        seen.add((key.field, key.metric))
        keys.append(key)
        if len(keys) > MAX_ORDER_KEYS:
            _fail(f"order_by: more than {MAX_ORDER_KEYS} sort keys", token.position, text)
        token = tokens[i]
        if token.kind is TokenKind.EOF:
            return OrderSpec(entity, tuple(keys))
        if token.kind is not TokenKind.COMMA:
            fail("expected ASC, DESC, ',' or the end", token)
        i += 1
