"""The `EventFilter` the Prefect client sends, and matching events against it.

The models parse the JSON that the 3.9.1 client produces with
`EventFilter.model_dump(mode="json")` (bodies of `POST /events/filter` and the
`filter` message of `/events/out`). `matches` checks one event in wire form
against a filter; it runs for every live event and every subscriber, so each
filter compiles once into a closure of precomputed sets, tuples and patterns.
`sql_prefilter` lists the criteria a SQL query can apply directly; the storage
layer applies those, then calls `matches` for the rest.

Semantics follow the reference server: fields combine with AND, values inside
one list with OR, a null or empty list is no constraint, and lists of
`related` / `any_resource` filters must all hold.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Self, TypedDict
from uuid import UUID

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

Matcher = Callable[[Mapping[str, Any]], bool]
"""A compiled filter: takes an event in wire form, says whether it matches."""

_Predicate = Callable[[Mapping[str, Any]], bool]

DEFAULT_LOOKBACK = timedelta(days=180)


def _utc(value: datetime) -> datetime:
    # Naive datetimes are UTC by convention; aware ones are normalised so that
    # comparisons and SQL parameters never mix offsets.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _default_since() -> datetime:
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0) - DEFAULT_LOOKBACK


def _now() -> datetime:
    return datetime.now(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
Strings = tuple[str, ...] | None
LabelSpec = dict[str, str | list[str]] | None


class _Filter(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        # null means "no constraint", which is what every field's default says.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class EventOccurredFilter(_Filter):
    """Events whose `occurred` lies in `[since, until]`, both inclusive.

    Missing (or null) bounds default to the start of today (UTC) minus 180 days
    and to the moment of parsing, as in the reference server.
    """

    since: UtcDatetime = Field(default_factory=_default_since)
    until: UtcDatetime = Field(default_factory=_now)


class EventNameFilter(_Filter):
    """Event names: any `prefix`, any exact `name`, none of the exclusions."""

    prefix: Strings = None
    exclude_prefix: Strings = None
    name: Strings = None
    exclude_name: Strings = None


class EventResourceFilter(_Filter):
    """The event's primary resource.

    `labels` maps a label to one pattern or a list of patterns (see
    `label_matcher`). `distinct` asks for one event per resource id; it shapes
    the query and does not affect `matches`.
    """

    id: Strings = None
    id_prefix: Strings = None
    labels: LabelSpec = None
    distinct: bool = False


class EventRelatedFilter(_Filter):
    """Some single related resource must satisfy every given criterion.

    `resources_in_roles` is a list of `[resource_id, role]` pairs, any of which
    may match. Only `event["related"]` is searched, never the primary resource.
    """

    id: Strings = None
    role: Strings = None
    resources_in_roles: tuple[tuple[str, str], ...] | None = None
    labels: LabelSpec = None


class EventAnyResourceFilter(_Filter):
    """The primary resource or some related resource satisfies every criterion."""

    id: Strings = None
    id_prefix: Strings = None
    labels: LabelSpec = None


class EventIDFilter(_Filter):
    """Events whose id is one of `id` (an empty list is no constraint)."""

    id: tuple[UUID, ...] | None = None


class EventTextFilter(_Filter):
    """Case-insensitive substring search over the event name, the values of the
    resource and related labels, and the payload as JSON text.

    Query syntax (as the reference): space-separated terms, any of which must
    occur; `-term` or `!term` must not occur; `+term` must occur; `"a phrase"`
    is one term, with `\\"` and `\\\\` escapes inside.
    """

    query: str = Field(max_length=200)


class EventOrder(StrEnum):
    ASC = "ASC"
    DESC = "DESC"


class EventFilter(_Filter):
    """The whole filter. Frozen: derive variants with `model_copy(update=...)`."""

    occurred: EventOccurredFilter = Field(default_factory=EventOccurredFilter)
    event: EventNameFilter | None = None
    resource: EventResourceFilter | None = None
    related: EventRelatedFilter | list[EventRelatedFilter] | None = None
    any_resource: EventAnyResourceFilter | list[EventAnyResourceFilter] | None = None
    id: EventIDFilter = Field(default_factory=EventIDFilter)
    text: EventTextFilter | None = None
    order: EventOrder = EventOrder.DESC

    @cached_property
    def matcher(self) -> Matcher:
        """This filter compiled into a predicate over wire-form events."""
        return _compile(self)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copied = super().model_copy(update=update, deep=deep)
        # The cached matcher was copied along with __dict__ and may be stale.
        copied.__dict__.pop("matcher", None)
        return copied


def matches(flt: EventFilter, event: Mapping[str, Any]) -> bool:
    """Whether an event in wire form passes the filter.

    Args:
        flt: The filter; its compiled form is cached on it.
        event: `{"occurred", "event", "resource", "related", "payload", "id", ...}`;
            `event` and `resource` must be present (a validated event has them).
            `occurred` may be a datetime (naive = UTC) or an ISO-8601 string, but
            a datetime saves a parse per subscriber; `id` may be a str or UUID.
    """
    return flt.matcher(event)


class SqlPrefilter(TypedDict):
    """Criteria a SQL query can apply as-is. `None` means no constraint.

    `related` holds one entry per related filter (all must hold); each entry
    asks for one related-resource row with `id in ids`, `role in roles` and
    `(id, role) in resources_in_roles`, for those that are not `None`.
    """

    since: datetime
    until: datetime
    names: list[str] | None
    prefixes: list[str] | None
    exclude_names: list[str]
    exclude_prefixes: list[str]
    resource_ids: list[str] | None
    resource_id_prefixes: list[str] | None
    event_ids: list[UUID] | None
    related: list[dict[str, list[Any] | None]]
    distinct: bool
    order: EventOrder


def sql_prefilter(flt: EventFilter) -> SqlPrefilter:
    """The parts of `flt` that map directly onto columns.

    Rows passing these are a superset of the matches; labels, `any_resource`
    and `text` are left to `matches`.
    """
    name = flt.event or EventNameFilter()
    resource = flt.resource or EventResourceFilter()
    related = []
    for rf in _as_list(flt.related):
        entry = {
            "ids": _list(rf.id),
            "roles": _list(rf.role),
            "resources_in_roles": _list(rf.resources_in_roles),
        }
        if any(v is not None for v in entry.values()):
            related.append(entry)
    return SqlPrefilter(
        since=flt.occurred.since,
        until=flt.occurred.until,
        names=_list(name.name),
        prefixes=_list(name.prefix),
        exclude_names=list(name.exclude_name or ()),
        exclude_prefixes=list(name.exclude_prefix or ()),
        resource_ids=_list(resource.id),
        resource_id_prefixes=_list(resource.id_prefix),
        event_ids=_list(flt.id.id),
        related=related,
        distinct=resource.distinct,
        order=flt.order,
    )


def _list(values: tuple[Any, ...] | None) -> list[Any] | None:
    return list(values) if values else None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


# -- compilation --------------------------------------------------------------


def _compile(flt: EventFilter) -> Matcher:
    preds: list[_Predicate] = []
    if flt.event is not None:
        preds.extend(_name_predicates(flt.event))
    if flt.id.id:
        preds.append(_id_predicate(flt.id.id))
    if flt.resource is not None:
        preds.extend(_resource_predicates(flt.resource))
    preds.append(_occurred_predicate(flt.occurred.since, flt.occurred.until))
    for rf in _as_list(flt.related):
        if (pred := _related_predicate(rf)) is not None:
            preds.append(pred)
    for af in _as_list(flt.any_resource):
        preds.append(_any_resource_predicate(af))
    if flt.text is not None and (pred := _text_predicate(flt.text.query)) is not None:
        preds.append(pred)

    if len(preds) == 1:
        return preds[0]
    checks = tuple(preds)

    def match(event: Mapping[str, Any]) -> bool:
        # A plain loop: measurably cheaper than all(<genexpr>) on this hot path.
        for check in checks:  # noqa: SIM110
            if not check(event):
                return False
        return True

    return match


def _name_predicates(nf: EventNameFilter) -> list[_Predicate]:
    preds: list[_Predicate] = []
    if nf.prefix:
        prefixes = nf.prefix
        preds.append(lambda e: e["event"].startswith(prefixes))
    if nf.exclude_prefix:
        excluded_prefixes = nf.exclude_prefix
        preds.append(lambda e: not e["event"].startswith(excluded_prefixes))
    if nf.name:
        names = frozenset(nf.name)
        preds.append(lambda e: e["event"] in names)
    if nf.exclude_name:
        excluded = frozenset(nf.exclude_name)
        preds.append(lambda e: e["event"] not in excluded)
    return preds


def _id_predicate(ids: Iterable[UUID]) -> _Predicate:
    wanted = frozenset(ids)

    def check(event: Mapping[str, Any]) -> bool:
        value = event.get("id")
        if not isinstance(value, UUID):
            try:
                value = UUID(str(value))
            except ValueError:
                return False
        return value in wanted

    return check


def _resource_predicates(rf: EventResourceFilter) -> list[_Predicate]:
    preds: list[_Predicate] = []
    if rf.id:
        ids = frozenset(rf.id)
        preds.append(lambda e: e["resource"].get("prefect.resource.id") in ids)
    if rf.id_prefix:
        prefixes = rf.id_prefix
        preds.append(lambda e: e["resource"].get("prefect.resource.id", "").startswith(prefixes))
    if rf.labels:
        labels = label_matcher(rf.labels)
        preds.append(lambda e: labels(e["resource"]))
    return preds


def _occurred_predicate(since: datetime, until: datetime) -> _Predicate:
    def check(event: Mapping[str, Any]) -> bool:
        occurred = event.get("occurred")
        if isinstance(occurred, str):
            try:
                occurred = datetime.fromisoformat(occurred)
            except ValueError:
                return False
        elif not isinstance(occurred, datetime):
            return False
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=UTC)
        return since <= occurred <= until

    return check


def _resource_checks(
    ids: Strings, id_prefixes: Strings, labels: LabelSpec
) -> list[Callable[[Mapping[str, str]], bool]]:
    checks: list[Callable[[Mapping[str, str]], bool]] = []
    if ids:
        wanted = frozenset(ids)
        checks.append(lambda r: r.get("prefect.resource.id") in wanted)
    if id_prefixes:
        checks.append(lambda r: r.get("prefect.resource.id", "").startswith(id_prefixes))
    if labels:
        checks.append(label_matcher(labels))
    return checks


def _related_predicate(rf: EventRelatedFilter) -> _Predicate | None:
    checks = _resource_checks(rf.id, None, rf.labels)
    if rf.role:
        roles = frozenset(rf.role)
        checks.append(lambda r: r.get("prefect.resource.role") in roles)
    if rf.resources_in_roles:
        pairs = frozenset(rf.resources_in_roles)
        checks.append(
            lambda r: (r.get("prefect.resource.id"), r.get("prefect.resource.role")) in pairs
        )
    if not checks:
        return None
    return lambda e: any(all(c(r) for c in checks) for r in e.get("related") or ())


def _any_resource_predicate(af: EventAnyResourceFilter) -> _Predicate:
    checks = _resource_checks(af.id, af.id_prefix, af.labels)

    def check(event: Mapping[str, Any]) -> bool:
        if all(c(event["resource"]) for c in checks):
            return True
        return any(all(c(r) for c in checks) for r in event.get("related") or ())

    return check


# -- label patterns -----------------------------------------------------------


def label_matcher(spec: Mapping[str, str | list[str]]) -> Callable[[Mapping[str, str]], bool]:
    """Compile a label specification into a predicate over one resource's labels.

    Every label in `spec` must match one of its patterns. A pattern is a glob
    (`*`, `?`, `[...]`, case-sensitive); a leading `!` negates it. A label the
    resource lacks never matches, not even a negated pattern, and an empty
    pattern list matches nothing.

    Args:
        spec: `{label: pattern or [patterns]}`, as in `resource.labels`.
    """
    compiled = tuple(
        (label, tuple(_pattern(p) for p in ([pats] if isinstance(pats, str) else pats)))
        for label, pats in spec.items()
    )

    def check(resource: Mapping[str, str]) -> bool:
        for label, patterns in compiled:
            value = resource.get(label)
            if value is None:
                return False
            for pattern in patterns:
                if pattern(value):
                    break
            else:
                return False
        return True

    return check


_GLOB_CHARS = re.compile(r"[*?\[]")


def _pattern(expected: str) -> Callable[[str], bool]:
    negated = expected.startswith("!")
    glob = expected[1:] if negated else expected
    head = glob[:-1]
    if not _GLOB_CHARS.search(glob):
        test: Callable[[str], bool] = glob.__eq__
    elif glob.endswith("*") and not _GLOB_CHARS.search(head):
        test = lambda v: v.startswith(head)  # noqa: E731
    else:
        test = re.compile(fnmatch.translate(glob)).match  # type: ignore[assignment]
    if negated:
        return lambda v: not test(v)
    return lambda v: bool(test(v))


# -- text search --------------------------------------------------------------


def parse_text_query(query: str) -> tuple[list[str], list[str], list[str]]:
    """Split a text query into (any-of, none-of, all-of) terms, lower-cased."""
    include: list[str] = []
    exclude: list[str] = []
    required: list[str] = []
    i, n = 0, len(query)
    while i < n:
        if query[i].isspace():
            i += 1
            continue
        sign = ""
        if query[i] in "-!+":
            # A sign counts only when glued to its term; a lone sign is dropped.
            if i + 1 >= n or query[i + 1].isspace():
                i += 1
                continue
            sign = query[i]
            i += 1
        if query[i] == '"':
            term, i = _read_phrase(query, i + 1)
            if not term.strip():
                continue
        else:
            start = i
            while i < n and not query[i].isspace() and query[i] != '"':
                i += 1
            term = query[start:i]
            if not term:
                continue
        target = exclude if sign in ("-", "!") else required if sign == "+" else include
        target.append(term.lower())
    return include, exclude, required


def _read_phrase(query: str, i: int) -> tuple[str, int]:
    # Reads up to the closing quote (or the end); `\"` and `\\` are escapes and
    # any other backslash is kept literally.
    out: list[str] = []
    n = len(query)
    while i < n:
        ch = query[i]
        if ch == "\\" and i + 1 < n:
            nxt = query[i + 1]
            if nxt in '"\\':
                out.append(nxt)
                i += 2
                continue
            out.append(ch)
            i += 1
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    return "".join(out), i


def _searchable_text(event: Mapping[str, Any]) -> str:
    parts = [event.get("event", "")]
    parts.extend(event["resource"].values())
    for related in event.get("related") or ():
        parts.extend(related.values())
    parts.append(
        orjson.dumps(
            event.get("payload") or {}, default=str, option=orjson.OPT_NON_STR_KEYS
        ).decode()
    )
    return " ".join(str(p) for p in parts).lower()


def _text_predicate(query: str) -> _Predicate | None:
    include, exclude, required = parse_text_query(query)
    if not (include or exclude or required):
        return None

    def check(event: Mapping[str, Any]) -> bool:
        text = _searchable_text(event)
        if include and not any(t in text for t in include):
            return False
        if any(t in text for t in exclude):
            return False
        return all(t in text for t in required)

    return check
