"""Load errors a user can act on: what is wrong, where, and all of them in one run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from aegis import Action, Approval, Policy, PolicyError
from aegis.cli import main
from aegis.runtime.watcher import PolicyWatcher

MANY_MISTAKES = """\
version: "2"
timezone: Mars/Base
defaults: {approval: maybe}
rules:
  - name: a
    match: {type: "x*"}
    conditions: {time_after: "25:00", param_matches: {q: "("}}
  - name: b
    approval: nope
  - name: c
    conditions: {time_after: "10:00", time_before: "10:00"}
"""


def test_every_problem_is_reported_in_one_pass() -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml_string(MANY_MISTAKES, source="p.yaml")
    lines = str(info.value).splitlines()
    assert lines == [
        "p.yaml:1:10: version: unsupported policy version '2': this Aegis reads policy"
        ' language version 1 (write version: "1")',
        "p.yaml:2:11: timezone: unknown time zone 'Mars/Base' (expected an IANA name such as"
        " Europe/Berlin)",
        "p.yaml:3:22: defaults.approval: must be one of: auto, approve, block (got 'maybe')",
        "p.yaml:7:30: rules[0].conditions.time_after: invalid time '25:00': the hour is 25,"
        " past 23 (24-hour clock)",
        "p.yaml:7:58: rules[0].conditions.param_matches.q: invalid regular expression '(':"
        " missing ), unterminated subpattern at position 0",
        "p.yaml:9:15: rules[1].approval: must be one of: auto, approve, block (got 'nope')",
        "p.yaml:11:52: rules[2].conditions.time_before: time_after and time_before are both"
        " '10:00': the window would be empty",
    ]


@pytest.mark.parametrize("version", ['"2"', "2", '"1.0"'])
def test_an_unsupported_version_says_which_one_is_read(version: str) -> None:
    with pytest.raises(PolicyError, match=r"unsupported policy version .*reads policy language"):
        Policy.from_yaml_string(f"version: {version}\nrules: []\n")


BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "rules: []\n"
)


def test_validate_rejects_an_alias_bomb_with_a_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert main(["validate", str(path)]) == 1
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert f"{path}:" in said and "alias" in said and "Traceback" not in said


def test_the_watcher_keeps_the_old_policy_on_an_alias_bomb(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("rules:\n  - {name: r, match: {type: 'read*'}, approval: block}\n")
    watcher = PolicyWatcher(path)
    path.write_text(BOMB)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    assert watcher.check() is False
    assert watcher.last_error is not None and "alias" in watcher.last_error
    assert watcher.evaluate(Action("read", "x")).approval is Approval.BLOCK


def test_simulate_refuses_an_invisible_name_in_one_line_and_shows_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("rules:\n  - {name: d, match: {type: 'delete*'}, approval: block}\n")
    assert main(["simulate", str(path), "del\u200bete:crm"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "U+200B (ZERO WIDTH SPACE)" in err and "Traceback" not in err
    assert main(["simulate", str(path), "r\u0435ad:crm", "--format", "json"]) == 0
    (decision,) = json.loads(capsys.readouterr().out)
    assert decision["approval"] == "approve" and "CYRILLIC" in decision["flags"][0]
