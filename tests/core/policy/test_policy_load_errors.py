"""Bad policies are rejected at load with ``file:line:col: key: message`` — never a traceback."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from aegis import Policy, PolicyError


def issues(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml(path)
    rendered = [str(issue) for issue in info.value.issues]
    prefix = f"{path}:"
    assert all(line.startswith(prefix) for line in rendered), rendered
    return [line[len(prefix) :] for line in rendered]


def test_unknown_key_in_rule(tmp_path):
    found = issues(
        """
        rules:
          - name: a
            match: {type: x}
            aproval: block
        """,
        tmp_path,
    )
    assert found == [
        "4:5: rules[0].aproval: unknown key 'aproval' (expected one of: name,"
        " description, match, conditions, risk_level, approval, approvers)"
    ]


def test_unknown_keys_everywhere_all_reported(tmp_path):
    found = issues(
        """
        version: "1"
        default: {approval: block}
        rules:
          - name: a
            match: {type: x, targte: y}
        """,
        tmp_path,
    )
    assert [f.split(": ")[0:2] for f in found] == [
        ["2:1", "default"],
        ["5:22", "rules[0].match.targte"],
    ]


def test_unknown_condition(tmp_path):
    found = issues(
        """
        rules:
          - name: a
            match: {type: x}
            conditions:
              param_greater: {n: 1}
            approval: block
        """,
        tmp_path,
    )
    assert len(found) == 1
    assert found[0].startswith(
        "5:7: rules[0].conditions.param_greater: unknown condition"
        " 'param_greater' (known: budget, param_contains, param_eq,"
    )


def test_unknown_condition_inside_combinator(tmp_path):
    found = issues(
        """
        rules:
          - name: a
            conditions:
              any:
                - {param_eq: {a: 1}}
                - {nope: 1}
        """,
        tmp_path,
    )
    assert found[0].startswith("6:12: rules[0].conditions.any[1].nope: unknown condition")


def test_invalid_regex(tmp_path):
    found = issues(
        """
        rules:
          - name: a
            conditions:
              param_matches:
                command: "rm (-rf"
        """,
        tmp_path,
    )
    assert found == [
        "5:18: rules[0].conditions.param_matches.command: invalid regular"
        " expression 'rm (-rf': missing ), unterminated subpattern at position 3"
    ]


def test_wrong_type(tmp_path):
    found = issues(
        """
        rules:
          - name: a
            conditions:
              param_gt: {count: "100"}
        """,
        tmp_path,
    )
    assert found == ["4:25: rules[0].conditions.param_gt.count: expected number, got string '100'"]


def test_bad_enum_value(tmp_path):
    found = issues(
        """
        rules:
          - name: a
            approval: maybe
        """,
        tmp_path,
    )
    assert found == ["3:15: rules[0].approval: must be one of: auto, approve, block (got 'maybe')"]


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("25:00", "the hour is 25, past 23"),
        ("8am", "expected HH:MM or HH:MM:SS"),
        ("18:60", "the minute is 60, past 59"),
        ("8:30", "write two digits each"),
    ],
)
def test_bad_time_string(tmp_path, bad, why):
    found = issues(
        f"""
        rules:
          - name: a
            conditions:
              time_after: "{bad}"
        """,
        tmp_path,
    )
    assert len(found) == 1
    assert found[0].startswith(f"4:19: rules[0].conditions.time_after: invalid time '{bad}': ")
    assert why in found[0]


def test_empty_time_window_is_rejected(tmp_path):
    found = issues(
        """
        rules:
          - name: a
            conditions: {time_after: "08:00", time_before: "08:00"}
        """,
        tmp_path,
    )
    assert found == [
        "3:52: rules[0].conditions.time_before: time_after and time_before are"
        " both '08:00': the window would be empty"
    ]


def test_bad_weekday(tmp_path):
    found = issues(
        """
        rules:
          - name: a
            conditions: {weekdays: [1, 8]}
        """,
        tmp_path,
    )
    assert found[0].startswith("3:32: rules[0].conditions.weekdays[1]:")


def test_yaml_syntax_error(tmp_path):
    found = issues(
        """
        rules:
          - name: a
            match: {type: [x, y}
        """,
        tmp_path,
    )
    assert len(found) == 1
    assert found[0].startswith("3:24: YAML syntax error:")


def test_duplicate_yaml_key(tmp_path):
    found = issues(
        """
        rules:
          - name: a
            approval: auto
            approval: block
        """,
        tmp_path,
    )
    assert found == ["4:5: rules[0].approval: duplicate key 'approval' (first at line 3)"]


def test_duplicate_rule_names(tmp_path):
    found = issues(
        """
        rules:
          - name: same
            match: {type: a}
          - name: other
          - name: same
            match: {type: b}
        """,
        tmp_path,
    )
    assert found == ["5:11: rules[2].name: duplicate rule name 'same' (also rules[0])"]


def test_missing_rule_name(tmp_path):
    found = issues("rules:\n  - match: {type: a}\n", tmp_path)
    assert found == ["2:5: rules[0]: missing required key 'name'"]


def test_errors_from_several_rules_are_collected(tmp_path):
    found = issues(
        """
        rules:
          - name: a
            colour: red
          - name: b
            conditions: {param_matches: {x: "("}}
          - name: c
            risk_level: extreme
        """,
        tmp_path,
    )
    assert [f.split(":")[0] for f in found] == ["3", "5", "7"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "a policy must be a mapping with rules, got empty"),
        ("- a\n- b\n", "a policy must be a mapping with rules, got an array"),
        ("timezone: Mars/Olympus\nrules: []\n", "unknown time zone 'Mars/Olympus'"),
        ("rules: [{name: a, match: {type: !!python/name:os.system x}}]\n", "unsupported YAML tag"),
        ("version: 2\nrules: []\n", "unsupported policy version 2: this Aegis reads"),
    ],
)
def test_other_bad_documents(tmp_path, text, message):
    found = issues(text, tmp_path)
    assert message in found[0]


def test_missing_file(tmp_path):
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml(tmp_path / "nope.yaml")
    assert "cannot read policy" in str(info.value)


def test_from_dict_errors_name_the_key():
    with pytest.raises(PolicyError) as info:
        Policy.from_dict({"rules": [{"name": "a", "approval": "never"}]}, source="api")
    assert (
        str(info.value) == "api: rules[0].approval: must be one of: auto, approve, block"
        " (got 'never')"
    )


def test_valid_policy_with_yaml_features_loads():
    policy = Policy.from_yaml_string(
        textwrap.dedent(
            """
        version: 1
        base: &base {risk_level: high, approval: approve}
        rules:
          - name: a
            <<: *base
            match: {type: [read*, "get*"]}
        """
        ).replace("base: &base", "defaults: &base")
    )
    assert policy.version == "1"
    assert policy.rules[0].risk_level is not None and policy.rules[0].risk_level.name == "HIGH"
    assert policy.rules[0].match.type == ("read*", "get*")
