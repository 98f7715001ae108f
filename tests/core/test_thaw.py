"""``thaw``: frozen params back to plain JSON shapes for the code an adapter calls."""

from __future__ import annotations

from aegis import Action
from aegis.core.frozen import thaw


def test_thaw_gives_plain_json_shapes_and_leaves_the_action_frozen() -> None:
    action = Action("write", "crm", params={"tags": ["a", "b"], "who": {"ids": [1, 2]}})
    plain = thaw(action.params)
    assert plain == {"tags": ["a", "b"], "who": {"ids": [1, 2]}}
    assert type(plain) is dict and type(plain["tags"]) is list and type(plain["who"]) is dict
    plain["tags"].append("c")
    assert action.params["tags"] == ("a", "b")
