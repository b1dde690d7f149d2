"""Flower's query parameters and ``search`` syntax: parsed like Flower 2.2, refused with its messages."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from fastapi import HTTPException

from headrace.api.flower import bool_arg, int_arg, task_query
from headrace.celery_monitor import search
from headrace.celery_monitor.search import AllOf, AnyOf, SearchSyntaxError, Term
from headrace.storage.celery_tasks import TaskQuery


def test_no_parameters() -> None:
    assert task_query({}) == TaskQuery()


def test_every_parameter() -> None:
    query = task_query(
        {
            "limit": "10",
            "offset": "5",
            "sort_by": "-received",
            "state": "FAILURE",
            "taskname": "tiny.boom",
            "workername": "w1@h",
            "received_start": "2026-01-02 03:04",
            "received_end": "2026-01-03 00:00",
            "search": "name:boom",
        }
    )

    start = time.mktime(datetime(2026, 1, 2, 3, 4).timetuple())
    end = time.mktime(datetime(2026, 1, 3).timetuple())
    assert query == TaskQuery(
        limit=10,
        offset=5,
        sort_by="received",
        descending=True,
        state="FAILURE",
        name="tiny.boom",
        worker="w1@h",
        received_start=start,
        received_end=end,
        search=Term("name", "boom"),
    )


def test_all_means_no_filter_and_negative_offset_is_zero() -> None:
    query = task_query({"state": "All", "taskname": "All", "workername": "All", "offset": "-3"})

    assert query == TaskQuery()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "ten"}, "Invalid argument 'ten' of type 'int'"),
        ({"limit": ""}, "Invalid argument '' of type 'int'"),
        ({"offset": "1.5"}, "Invalid argument '1.5' of type 'int'"),
        (
            {"sort_by": "runtime"},
            "Invalid sort_by 'runtime', expected one of name, received, started, state",
        ),
        (
            {"sort_by": "-uuid"},
            "Invalid sort_by '-uuid', expected one of name, received, started, state",
        ),
        (
            {"received_start": "2026-01-02"},
            "Invalid received_start or received_end, expected format 'YYYY-MM-DD HH:MM'",
        ),
        (
            {"received_end": "yesterday"},
            "Invalid received_start or received_end, expected format 'YYYY-MM-DD HH:MM'",
        ),
    ],
)
def test_bad_parameters_are_400_with_flowers_message(params: dict[str, str], message: str) -> None:
    with pytest.raises(HTTPException) as caught:
        task_query(params)

    assert caught.value.status_code == 400
    assert caught.value.detail == message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, False), ("1", True), ("true", True), ("Yes", True), ("on", True), ("0", False)],
)
def test_bool_arg(raw: str | None, expected: bool) -> None:
    params = {} if raw is None else {"refresh": raw}

    assert bool_arg(params, "refresh") is expected


def test_bad_bool_and_int() -> None:
    with pytest.raises(HTTPException) as caught:
        bool_arg({"status": "maybe"}, "status")
    assert (caught.value.status_code, caught.value.detail) == (
        400,
        "Invalid argument 'maybe' of type 'bool'",
    )
    assert int_arg({}, "limit", None) is None
    assert int_arg({"limit": " 7 "}, "limit", None) == 7


# query -> parsed tree
SEARCHES = {
    "": None,
    "   ": None,
    "boom": Term(None, "boom"),
    "state:failure": Term("state", "failure"),
    "STATE:x": Term("state", "x"),
    "kwargs:a=1": Term("kwargs", "a=1"),
    "name:tiny worker:w1@h": AllOf((Term("name", "tiny"), Term("worker", "w1@h"))),
    "abc AND def": AllOf((Term(None, "abc"), Term(None, "def"))),
    "abc OR def": AnyOf((Term(None, "abc"), Term(None, "def"))),
    "abc def OR ghi": AnyOf((AllOf((Term(None, "abc"), Term(None, "def"))), Term(None, "ghi"))),
    "abc (def OR ghi)": AllOf((Term(None, "abc"), AnyOf((Term(None, "def"), Term(None, "ghi"))))),
    '"two words"': Term(None, "two words"),
    'args:"(1, 2)"': Term("args", "(1, 2)"),
    '"AND"': Term(None, "AND"),
    "abc abc": Term(None, "abc"),
    "unknown:field": Term(None, "unknown:field"),
    'esc\\"aped': Term(None, 'esc"aped'),
}


@pytest.mark.parametrize("query", SEARCHES)
def test_search_parses(query: str) -> None:
    assert search.parse(query) == SEARCHES[query]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("ab", "Substring search terms must contain at least 3 characters at position 0."),
        ("name:ab", "Substring search terms must contain at least 3 characters at position 0."),
        ('"open', "Unterminated quoted phrase at position 0."),
        ("abc NOT def", "NOT is not supported at position 4."),
        ("-abc", "Negation with '-' is not supported at position 0."),
        ("name:", "Search qualifier requires a value at position 0."),
        ("abc OR", "OR must be followed by a search term at position 4."),
        ("abc AND", "AND must be followed by a search term at position 4."),
        ("OR abc", "Expected a search term at position 0."),
        ("(abc", "Missing closing parenthesis at position 0."),
        ("()", "Empty group at position 0."),
        ("abc)", "Unexpected ')' at position 3."),
        ("((((((abc))))))", "Query nesting exceeds 5 levels at position 5."),
        ("x" * 2049, "Query exceeds 2048 characters."),
        (" ".join(["abc"] * 129), "Query exceeds 128 tokens."),
    ],
)
def test_search_syntax_errors(query: str, message: str) -> None:
    with pytest.raises(SearchSyntaxError) as caught:
        search.parse(query)

    assert str(caught.value) == message


def test_a_bad_search_reaches_the_route_as_a_syntax_error() -> None:
    with pytest.raises(SearchSyntaxError):
        task_query({"search": "ab"})
