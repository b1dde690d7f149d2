"""The ``search`` query of Flower's task list, parsed into a small tree (pure).

The syntax is Flower 2.2's: words match anywhere (id, name, state, worker,
args, kwargs, result), ``field:value`` narrows to one field (``name``,
``state``, ``worker``, ``args``, ``kwargs``, ``result``), ``"quoted phrases"``
keep spaces, words are ANDed unless joined by ``OR``, parentheses group.
``state:`` matches exactly, ``kwargs:key=value`` matches one keyword argument,
every other term is a case-insensitive substring of at least 3 characters.
``NOT`` and ``-word`` are refused, as Flower refuses them. Storage turns the
tree into SQL (``storage/celery_tasks.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

FIELDS = frozenset({"name", "state", "worker", "args", "kwargs", "result"})
MIN_SUBSTRING = 3
MAX_LENGTH = 2048
MAX_TOKENS = 128
MAX_DEPTH = 5


class SearchSyntaxError(ValueError):
    """The query cannot be parsed; the message says where and why."""

    def __init__(self, message: str, position: int | None = None) -> None:
        where = "" if position is None else f" at position {position}"
        super().__init__(f"{message}{where}.")


@dataclass(frozen=True)
class Term:
    """``field`` (None: any field) contains ``value``; for ``state``, equals it."""

    field: str | None
    value: str


@dataclass(frozen=True)
class AllOf:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Node, ...]


Node = Term | AllOf | AnyOf


@dataclass(frozen=True)
class _Token:
    kind: str  # TERM, AND, OR, LPAREN, RPAREN, END
    value: str
    position: int


def _read_word(query: str, index: int) -> tuple[str, bool, int]:
    """The word starting at ``index``: its text, whether it was quoted, where it ends."""
    chars: list[str] = []
    quoted = in_quote = False
    while index < len(query):
        char = query[index]
        if char == "\\" and index + 1 < len(query) and query[index + 1] in '"\\':
            chars.append(query[index + 1])
            index += 2
            continue
        if char == '"':
            quoted, in_quote = True, not in_quote
            index += 1
            continue
        if not in_quote and (char.isspace() or char in "()"):
            break
        chars.append(char)
        index += 1
    if in_quote:
        raise SearchSyntaxError("Unterminated quoted phrase")
    return "".join(chars), quoted, index


def tokenize(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    while index < len(query):
        char = query[index]
        if char.isspace():
            index += 1
            continue
        start = index
        if char in "()":
            tokens.append(_Token("LPAREN" if char == "(" else "RPAREN", char, start))
            index += 1
        else:
            try:
                word, quoted, index = _read_word(query, index)
            except SearchSyntaxError:
                raise SearchSyntaxError("Unterminated quoted phrase", start) from None
            if not word:
                raise SearchSyntaxError("Empty search term", start)
            if not quoted and word == "NOT":
                raise SearchSyntaxError("NOT is not supported", start)
            kind = word if not quoted and word in ("AND", "OR") else "TERM"
            tokens.append(_Token(kind, word, start))
        if len(tokens) > MAX_TOKENS:
            raise SearchSyntaxError(f"Query exceeds {MAX_TOKENS} tokens")
    tokens.append(_Token("END", "", len(query)))
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.current
        self.index += 1
        return token

    def any_of(self, depth: int) -> Node:
        children = [self.all_of(depth)]
        while self.current.kind == "OR":
            operator = self.take()
            if self.current.kind in ("END", "RPAREN", "AND", "OR"):
                raise SearchSyntaxError("OR must be followed by a search term", operator.position)
            children.append(self.all_of(depth))
        return _combine(AnyOf, children)

    def all_of(self, depth: int) -> Node:
        children = [self.primary(depth)]
        while self.current.kind not in ("END", "RPAREN", "OR"):
            if self.current.kind == "AND":
                operator = self.take()
                if self.current.kind in ("END", "RPAREN", "AND", "OR"):
                    raise SearchSyntaxError(
                        "AND must be followed by a search term", operator.position
                    )
            children.append(self.primary(depth))
        return _combine(AllOf, children)

    def primary(self, depth: int) -> Node:
        token = self.current
        if token.kind == "LPAREN":
            if depth >= MAX_DEPTH:
                raise SearchSyntaxError(f"Query nesting exceeds {MAX_DEPTH} levels", token.position)
            self.take()
            if self.current.kind == "RPAREN":
                raise SearchSyntaxError("Empty group", token.position)
            node = self.any_of(depth + 1)
            if self.current.kind != "RPAREN":
                raise SearchSyntaxError("Missing closing parenthesis", token.position)
            self.take()
            return node
        if token.kind != "TERM":
            raise SearchSyntaxError("Expected a search term", token.position)
        self.take()
        return _term(token)


def _combine(kind: type[AllOf] | type[AnyOf], children: list[Node]) -> Node:
    flat: list[Node] = []
    for child in children:
        for node in child.children if isinstance(child, kind) else (child,):
            if node not in flat:
                flat.append(node)
    return flat[0] if len(flat) == 1 else kind(tuple(flat))


def _term(token: _Token) -> Term:
    field: str | None = None
    value = token.value
    prefix, colon, rest = value.partition(":")
    if colon and prefix.casefold() in FIELDS:
        field, value = prefix.casefold(), rest
    if field is None and value.startswith("-"):
        raise SearchSyntaxError("Negation with '-' is not supported", token.position)
    if not value:
        raise SearchSyntaxError("Search qualifier requires a value", token.position)
    exact = field == "state" or (field == "kwargs" and "=" in value)
    if not exact and len(value.strip()) < MIN_SUBSTRING:
        raise SearchSyntaxError(
            f"Substring search terms must contain at least {MIN_SUBSTRING} characters",
            token.position,
        )
    return Term(field, value)


def parse(query: str) -> Node | None:
    """The tree of ``query``; None for an empty query (everything matches).

    Raises:
        SearchSyntaxError: with Flower's message for the same mistake.
    """
    query = query.strip()
    if len(query) > MAX_LENGTH:
        raise SearchSyntaxError(f"Query exceeds {MAX_LENGTH} characters")
    parser = _Parser(tokenize(query))
    if parser.current.kind == "END":
        return None
    node = parser.any_of(0)
    if parser.current.kind != "END":
        raise SearchSyntaxError(f"Unexpected {parser.current.value!r}", parser.current.position)
    return node
