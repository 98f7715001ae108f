from __future__ import annotations

import csv
import io
import json

import pytest

from aegis.cli.output import format_plain, print_table, render_records, write_records

COLUMNS = ("id", "action_type", "params", "note")
RECORDS = [
    {"id": 1, "action_type": "read", "params": {"count": 5}, "note": None},
    {"id": 2, "action_type": "bulk", "params": {"a": [1, 2]}, "note": 'has "quotes", commas'},
]


def test_plain_table_is_aligned_and_has_no_ansi() -> None:
    text = format_plain(("ID", "Action"), [["1", "read"], ["22", "bulk_update"]], title="T")
    assert text.splitlines() == ["T", "ID  Action", "1   read", "22  bulk_update"]


def test_print_table_plain_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(("A", "B"), [(1, None), ("[bold]x[/]", {"k": 1})])
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    assert "│" not in out and "┃" not in out
    assert out.splitlines()[2].split("  ")[0] == "[bold]x[/]"


def test_print_table_rich_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    print_table(("A", "B"), [("[bold]x[/]", "y")])
    out = capsys.readouterr().out
    assert "\x1b[" in out  # styled by rich (borderless: borders do not fit 80 columns)
    assert "[bold]x[/]" in out  # cell values are text, never rich markup


def test_json_round_trip() -> None:
    assert json.loads(render_records(RECORDS, "json", COLUMNS)) == RECORDS
    assert json.loads(render_records([], "json", COLUMNS)) == []


def test_jsonl_round_trip() -> None:
    lines = render_records(RECORDS, "jsonl", COLUMNS).splitlines()
    assert [json.loads(line) for line in lines] == RECORDS


def test_csv_round_trip() -> None:
    buffer = io.StringIO()
    assert write_records(RECORDS, "csv", buffer, columns=COLUMNS) == 2
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert [r["id"] for r in rows] == ["1", "2"]
    assert json.loads(rows[1]["params"]) == {"a": [1, 2]}
    assert rows[1]["note"] == 'has "quotes", commas'
    assert rows[0]["note"] == ""
