"""Params are immutable data from the moment the Action is made (issue 5, issue 12 item 5)."""

from __future__ import annotations

import collections
import copy
import datetime as dt
import decimal
import enum
import pickle
import uuid

import pytest

from aegis import Action
from aegis.core.frozen import MAX_DEPTH, FrozenDict
from aegis.errors import ActionError


def test_caller_containers_are_not_shared() -> None:
    cmd = ["ls", "-l"]
    opts = {"dry": False}
    act = Action("shell", "host", params={"cmd": cmd, "opts": opts})
    cmd.append("/etc/shadow")
    opts["dry"] = True
    assert act.params == {"cmd": ("ls", "-l"), "opts": {"dry": False}}


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.__setitem__("amount", 10**9),
        lambda p: p.update(amount=10**9),
        lambda p: p.pop("amount"),
        lambda p: p.setdefault("other", 1),
        lambda p: p.clear(),
        lambda p: p.popitem(),
        lambda p: p.__delitem__("amount"),
        lambda p: p["nested"].__setitem__("x", 2),
    ],
)
def test_frozen_params_refuse_every_change(mutate: object) -> None:
    act = Action("transfer", "bank", params={"amount": 5, "nested": {"x": 1}})
    with pytest.raises(TypeError, match="frozen"):
        mutate(act.params)  # type: ignore[operator]
    assert act.params == {"amount": 5, "nested": {"x": 1}}


def test_a_deque_is_refused_with_its_path() -> None:
    with pytest.raises(ActionError, match=r"params\.args\.1: a deque cannot be an action param"):
        Action("shell", "host", params={"args": [1, collections.deque(["rm"])]})


def test_custom_objects_are_refused() -> None:
    class Thing:
        pass

    with pytest.raises(ActionError, match=r"params\.x: a Thing"):
        Action("t", "x", params={"x": Thing()})


def test_supported_immutable_types_pass_and_copies_are_made_of_the_mutable_ones() -> None:
    blob = bytearray(b"ab")
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    act = Action(
        "t",
        "x",
        params={
            "blob": blob,
            "when": when,
            "money": decimal.Decimal("1.10"),
            "id": uuid.UUID(int=1),
            "tags": {"a", "b"},
        },
    )
    blob[0] = ord("z")
    assert act.params["blob"] == b"ab"
    assert act.params["tags"] == frozenset({"a", "b"})
    assert act.params["when"] is when


def test_scalar_subclasses_become_plain_values() -> None:
    class Colour(enum.StrEnum):
        RED = "red"

    class Level(enum.IntEnum):
        HIGH = 3

    act = Action("t", "x", params={"c": Colour.RED, "l": Level.HIGH})
    assert type(act.params["c"]) is str and act.params["c"] == "red"
    assert type(act.params["l"]) is int and act.params["l"] == 3


def test_depth_limit_is_a_clear_error_not_a_recursion_error() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(5000):
        node["n"] = {}
        node = node["n"]  # type: ignore[assignment]
    with pytest.raises(ActionError, match=f"nested deeper than {MAX_DEPTH}"):
        Action("t", "x", params=deep)


def test_params_within_the_limit_are_accepted() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(MAX_DEPTH - 2):
        node["n"] = {}
        node = node["n"]  # type: ignore[assignment]
    Action("t", "x", params=deep)


def test_frozen_params_copy_and_pickle_as_equal_values() -> None:
    act = Action("t", "x", params={"a": [1, {"b": 2}]})
    assert copy.deepcopy(act.params) == act.params
    back = pickle.loads(pickle.dumps(act.params))
    assert isinstance(back, FrozenDict) and back == act.params


def test_digest_tells_types_apart_and_binds_identity() -> None:
    base = Action("pay", "bank", params={"amount": 1})
    assert base.digest == Action("pay", "bank", params={"amount": 1}).digest
    for other in (
        Action("pay", "bank", params={"amount": 1.0}),
        Action("pay", "bank", params={"amount": "1"}),
        Action("pay", "bank", params={"amount": [1]}),
        Action("pay", "bank", params={"amount": {"l": [1]}}),
        Action("pay", "bank", params={"amount": 1}, agent_id="a"),
        Action("pay", "bank", params={"amount": 1}, session_id="s"),
        Action("pay", "bank2", params={"amount": 1}),
    ):
        assert other.digest != base.digest, other


def test_digest_is_stable_across_versions() -> None:
    """A stored request is bound to its action's digest: an answer given (or a request
    resumed) by another version of aegis must compute the same value for the same action."""
    action = Action(
        "pay",
        "bank",
        params={
            "amount": 5000,
            "to": "acct-1",
            "é": [1.5, "ü", None, True],
            "tags": {"b", "a"},
            "when": dt.date(2026, 1, 2),
            "n": decimal.Decimal("1.10"),
            "u": uuid.UUID(int=7),
            "raw": b"x",
        },
        agent_id="a1",
        session_id="s1",
    )
    assert action.digest == "a0506544c6c45bddb984bce05d2f738d7c7afa6b6ad13fec532a94135271aa42"
