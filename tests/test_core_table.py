"""The priority table: one row per state, the last always matches, docs/behaviour.md carries it verbatim."""

from __future__ import annotations

from pathlib import Path

from robot.core.decide import Situation
from robot.core.rules import TABLE, Wheels, markdown_table
from robot.core.types import Goal, State

DOC = Path(__file__).resolve().parents[1] / "docs" / "behaviour.md"


def _doc_table() -> str:
    text = DOC.read_text(encoding="utf-8")
    begin, end = "<!-- table:begin -->\n", "<!-- table:end -->"
    assert text.count(begin) == 1 and text.count(end) == 1, "docs/behaviour.md lost its table markers"
    return text[text.index(begin) + len(begin) : text.index(end)]


def test_behaviour_doc_contains_exactly_the_table_rendered_from_the_code() -> None:
    assert _doc_table() == markdown_table()


def test_rendered_table_has_one_line_per_row_in_priority_order() -> None:
    rows = markdown_table().splitlines()[2:]
    assert [r.split("|")[2].strip(" `") for r in rows] == [r.state.value for r in TABLE]


def test_table_has_one_row_per_state_with_estop_first_and_cleaning_last() -> None:
    states = [r.state for r in TABLE]
    assert sorted(states) == sorted(State) and len(states) == len(set(states))
    assert states[:3] == [State.ESTOP, State.FAULT, State.CRITICAL_BATTERY]
    assert states[-1] is State.CLEANING


def test_only_cleaning_runs_brushes_and_the_protective_rows_brake() -> None:
    assert [r.state for r in TABLE if r.brushes] == [State.CLEANING]
    for r in TABLE[:5]:
        assert r.wheels is Wheels.OFF, r.state
    assert all(r.clears for r in TABLE)


def test_last_row_matches_any_situation() -> None:
    quiet = Situation(
        estop=False, fault=False, critical=False, stuck=False, escape_phase="none", mode="auto", rain=False,
        low_battery=False, night=False, tray_full=False, route_done=False, goal=Goal.ROUTE, arrived=False,
        gps_ok=True, inside_fence=True,
    )  # fmt: skip
    assert [r.state for r in TABLE if r.when(quiet)] == [State.CLEANING]
    everything = Situation(
        estop=True, fault=True, critical=True, stuck=True, escape_phase="stopped", mode="manual", rain=True,
        low_battery=True, night=True, tray_full=True, route_done=True, goal=Goal.SHELTER, arrived=True,
        gps_ok=False, inside_fence=False,
    )  # fmt: skip
    assert TABLE[-1].when(everything)
    assert next(r for r in TABLE if r.when(everything)).state is State.ESTOP
