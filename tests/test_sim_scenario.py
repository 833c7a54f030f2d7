"""Simulator scenarios: the shipped ones load, and an invalid one gets an error naming its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from robot.errors import ScenarioError
from sim import scenario as scen

HEAD = "start = 2024-03-15T07:00:00\nduration_h = 10\n"


def error_of(text: str) -> str:
    with pytest.raises(ScenarioError) as exc:
        scen.parse(text, "bad.toml")
    return str(exc.value)


def line_no(text: str, needle: str, nth: int = 0) -> int:
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return hits[nth]


def test_the_seven_required_scenarios_are_shipped_and_valid() -> None:
    names = scen.shipped_names()
    for required in (
        "sunny_day",
        "cloudy_day",
        "monsoon_afternoon",
        "tray_twice",
        "crowded_alley",
        "night",
        "link_faults",
    ):
        assert required in names
    for name in names:
        sc = scen.load(name)
        assert sc.name == name
        assert sc.duration_s > 0


def test_shipped_scenarios_have_what_their_names_promise() -> None:
    assert len(scen.load("monsoon_afternoon").weather.rain) == 2
    assert len(scen.load("tray_twice").tray_empty_s) == 2
    crowded = scen.load("crowded_alley").obstacles
    assert {o.kind for o in crowded} == {"static", "moving"}
    kinds = {f.kind for f in scen.load("link_faults").faults}
    assert {"link_cut", "corrupt_bytes", "gps_loss", "gps_jump", "stuck_sensor", "modem_gone"} <= kinds
    assert len(scen.load("cloudy_day").weather.clouds) >= 1
    night = scen.load("night")
    assert night.start.hour >= 18 and len(night.days()) == 2


def test_clock_times_are_local_and_wrap_to_the_next_day() -> None:
    sc = scen.parse(
        "start = 2024-03-15T18:00:00\nduration_h = 12\n"
        '[[tray_empty]]\nat = "19:30"\n[[tray_empty]]\nat = "02:00:30"\n[[tray_empty]]\nat = 90\n'
    )
    assert sc.tray_empty_s == (90.0, 5400.0, 8 * 3600 + 30.0)


def test_toml_syntax_error_names_the_line() -> None:
    msg = error_of(HEAD + "[weather]\ntemp_min_c = = 3\n")
    assert "bad.toml" in msg and "line 4" in msg


def test_value_out_of_range_in_second_obstacle_names_its_line() -> None:
    text = HEAD + (
        '[[obstacle]]\nkind = "static"\nx = 1\ny = 2\nradius_m = 0.3\n\n'
        '[[obstacle]]\nkind = "static"\nx = 1\ny = 2\nradius_m = -1.0\n'
    )
    msg = error_of(text)
    assert f"line {line_no(text, 'radius_m', 1)}:" in msg
    assert "obstacle[1].radius_m = -1.0" in msg and "between" in msg


def test_unknown_key_names_its_line_and_the_known_keys() -> None:
    text = HEAD + "[robot]\nbattery_soc = 0.5\nbatery = 3\n"
    msg = error_of(text)
    assert f"line {line_no(text, 'batery =')}:" in msg
    assert "robot.batery: unknown key" in msg and "battery_soc" in msg


def test_bad_value_inside_an_inline_array_names_its_line() -> None:
    text = HEAD + (
        "[weather]\nclouds = [\n"
        '    { from = "08:00", to = "09:00", cover = 0.5 },\n'
        '    { from = "10:00", to = "11:00", cover = 1.5 },\n'
        "]\n"
    )
    msg = error_of(text)
    assert f"line {line_no(text, 'cover = 1.5')}:" in msg
    assert "weather.clouds[1].cover = 1.5" in msg


def test_bad_clock_time_and_period_order_are_rejected() -> None:
    text = HEAD + '[weather]\nrain = [{ from = "25:00", to = "26:00" }]\n'
    assert "clock time" in error_of(text)
    text = HEAD + '\n[weather]\nrain = [{ from = "14:00", to = "13:00" }]\n'
    msg = error_of(text)
    assert f"line {line_no(text, 'rain =')}:" in msg and "must be after" in msg


def test_missing_start_and_wrong_fault_fields_are_explained() -> None:
    assert "missing required key 'start'" in error_of("duration_h = 3\n")
    text = HEAD + '[[fault]]\nat = "08:00"\nkind = "link_cut"\nduration_s = 5\nsensor = "rain"\n'
    msg = error_of(text)
    assert f"line {line_no(text, 'sensor')}:" in msg and "only a stuck_sensor fault takes sensor" in msg
    text = HEAD + '[[fault]]\nat = "08:00"\nkind = "meteor"\n'
    msg = error_of(text)
    assert f"line {line_no(text, 'meteor')}:" in msg and "link_cut" in msg


def test_a_place_needs_along_or_xy_not_both() -> None:
    text = HEAD + "[[shade]]\nalong_m = 3\nx = 2\nradius_m = 4\n"
    msg = error_of(text)
    assert f"line {line_no(text, '[[shade]]')}:" in msg and "either along_m" in msg


def test_fault_after_the_end_is_rejected() -> None:
    text = 'start = 2024-03-15T07:00:00\nduration_h = 1\n[[fault]]\nat = "09:00"\nkind = "gps_loss"\n'
    text += "duration_s = 3\n"
    assert "past the end of the run" in error_of(text)


def test_clock_times_that_roll_past_the_end_of_the_run_are_errors() -> None:
    # 08:00 in a 3 h run from 09:00 is tomorrow morning: a slip, not a plan.
    text = 'start = 2024-03-15T09:00:00\nduration_h = 3\n\n[[tray_empty]]\nat = "08:00"\n'
    msg = error_of(text)
    assert f"line {line_no(text, 'at = ')}:" in msg and "tray_empty[0].at = '08:00'" in msg
    assert "23.00 h after the start, past the end of the run (3 h)" in msg and "next day" in msg
    text = HEAD + '[weather]\nrain = [{ from = "16:00", to = "18:00" }]\n'  # 07:00 + 10 h = 17:00
    assert "past the end of the run" in error_of(text)
    text = HEAD + '[[operator]]\nat = 36001\naction = "reset"\n'
    assert "operator[0].at = 36001: 10.00 h after the start, past the end" in error_of(text)
    text = (
        HEAD + '[[operator]]\nat = "16:59:55"\naction = "drive"\nleft = 0.5\nright = 0.5\nduration_s = 10\n'
    )
    assert "the drive goes past the end of the run" in error_of(text)
    # The very end is still inside.
    assert scen.parse(HEAD + '[[tray_empty]]\nat = "17:00"\n').tray_empty_s == (36000.0,)


def test_places_outside_the_site_are_errors() -> None:
    text = HEAD + "[robot]\nx = 100.0\ny = 0.0\n"
    msg = error_of(text)
    assert f"line {line_no(text, 'x = 100')}:" in msg
    assert "robot.x: (100.0, 0.0) is" in msg and "outside the site's fence" in msg
    text = HEAD + '[[obstacle]]\nkind = "static"\nalong_m = 40\noffset_m = 30\n'
    assert "obstacle[0].along_m: (" in error_of(text) and "outside the site's fence" in error_of(text)
    text = HEAD + '[[obstacle]]\nkind = "static"\nalong_m = 400\n'
    msg = error_of(text)
    assert "obstacle[0].along_m = 400: beyond the end of the route (151.0 m)" in msg
    # A tree beside the fence whose shade reaches in is on the site.
    assert scen.parse(HEAD + "[[shade]]\nx = 0.0\ny = 10.0\nradius_m = 6\n").shade


def test_expect_table_reads_operators_figures_and_nested_keys() -> None:
    text = HEAD + (
        '[expect]\nbrownout_s = 0\nshelter_reached = "storms"\ngeofence_max_depth_m = "<= 0.5"\n'
        'route_completion = ">0.9"\ntime_in_state_s.cleaning = "> 600"\n"arrivals.park.inside" = "== 1"\n'
    )
    sc = scen.parse(text)
    got = [(e.key, e.op, e.operand, e.line) for e in sc.expect]
    assert got == [
        ("brownout_s", "==", 0.0, line_no(text, "brownout_s")),
        ("shelter_reached", "==", "storms", line_no(text, "shelter_reached")),
        ("geofence_max_depth_m", "<=", 0.5, line_no(text, "geofence_max")),
        ("route_completion", ">", 0.9, line_no(text, "route_completion")),
        ("time_in_state_s.cleaning", ">", 600.0, line_no(text, "time_in_state_s")),
        ("arrivals.park.inside", "==", 1.0, line_no(text, "arrivals")),
    ]
    assert sc.expect[2].describe() == "geofence_max_depth_m <= 0.5"


def test_expect_errors_name_the_line() -> None:
    text = HEAD + "[expect]\nbrownout = 0\n"
    msg = error_of(text)
    assert (
        f"line {line_no(text, 'brownout')}:" in msg and "not a report figure" in msg and "brownout_s" in msg
    )
    text = HEAD + '[expect]\ncollisions = "about 3"\n'
    assert "expected an operator" in error_of(text)
    text = HEAD + '[expect]\ncollisions = "<= lots"\n'
    assert "'lots' is neither a number nor a report figure" in error_of(text)
    text = HEAD + "[expect]\ncollisions = true\n"
    assert "expected a number or a string" in error_of(text)


def test_operator_timeline_reads_actions_and_rejects_stray_keys() -> None:
    text = HEAD + (
        '[[operator]]\nat = "08:00"\naction = "estop"\n'
        '[[operator]]\nat = "07:30"\naction = "mode"\nmode = "manual"\n'
        '[[operator]]\nat = "07:31"\naction = "drive"\nleft = 0.5\nright = -0.5\nduration_s = 3\n'
    )
    ops = scen.parse(text).operator
    assert [(o.at_s, o.action, o.mode) for o in ops] == [
        (1800.0, "mode", "manual"),
        (1860.0, "drive", ""),
        (3600.0, "estop", ""),
    ]
    assert (ops[1].left, ops[1].right, ops[1].duration_s) == (0.5, -0.5, 3.0)
    text = HEAD + '[[operator]]\nat = "08:00"\naction = "estop"\nmode = "auto"\n'
    msg = error_of(text)
    assert f"line {line_no(text, 'mode =')}:" in msg and "only a mode action takes mode" in msg
    assert "must be one of 'auto'" in error_of(
        HEAD + '[[operator]]\nat = 5\naction = "mode"\nmode = "turbo"\n'
    )
    assert "'estop', 'reset'" in error_of(HEAD + '[[operator]]\nat = 5\naction = "dance"\n')


def test_unknown_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ScenarioError, match="sunny_day"):
        scen.load("sunyday")


def test_missing_site_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(HEAD + '[site]\nmap = "nowhere.geojson"\n', encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"mine.toml line 4: site.map"):
        scen.load(path)


def test_a_scenario_file_by_path_loads(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        HEAD + '[[fault]]\nat = "07:01"\nkind = "stuck_sensor"\nsensor = "rain"\nduration_s = 9\n'
    )
    sc = scen.load(path)
    assert sc.name == "mine"
    assert sc.faults[0].at_s == 60.0 and sc.faults[0].sensor == "rain"


def test_line_of_finds_nested_keys() -> None:
    text = (
        HEAD
        + "[litter]\nkg_per_m2 = 0.1\nhotspots = [\n  { along_m = 3, radius_m = 1, kg_per_m2 = 1 },\n"
        + ("  { along_m = 9,\n    radius_m = 2, kg_per_m2 = 1 },\n]\n")
    )
    assert scen.line_of(text, ("litter", "hotspots", 1, "radius_m")) == line_no(text, "radius_m = 2")
    assert scen.line_of(text, ("litter", "kg_per_m2")) == line_no(text, "kg_per_m2 = 0.1")
    assert scen.line_of(text, ("duration_h",)) == 2


def test_every_shipped_scenario_states_what_it_expects() -> None:
    for name in scen.shipped_names():
        sc = scen.load(name)
        assert sc.expect, f"{name} has no [expect] table"
        assert any(e.key == "brownout_s" for e in sc.expect), name


@pytest.mark.parametrize(
    ("body", "needle", "expect"),
    [
        # An unknown key inside an array of tables: its line, the key and the keys it could have meant.
        (
            '[[fault]]\nat = 5\nkind = "gps_loss"\nduraton_s = 3\n',
            "duraton_s",
            "fault[0].duraton_s: unknown key; known keys here: at, cep_m",
        ),
        # Wrong types: a string for a number, a fraction for a whole number, a number for a table.
        ('[weather]\ntemp_min_c = "hot"\n', "temp_min_c", "weather.temp_min_c = 'hot': expected a number"),
        ("seed = 1.5\n", "seed", "seed = 1.5: expected a whole number"),
        ("site = 3\n", "site =", "site = 3: expected a [site] table"),
        ("obstacle = 5\n", "obstacle =", "obstacle = 5: expected a list of tables"),
        # Out of range, NaN included (TOML allows nan; it is inside no range).
        (
            "[robot]\nbattery_soc = 1.5\n",
            "battery_soc",
            "robot.battery_soc = 1.5: must be between 0.0 and 1.0",
        ),
        (
            "[[obstacle]]\nx = 1\ny = 2\nradius_m = nan\n",
            "radius_m",
            "obstacle[0].radius_m = nan: must be between 0.05 and 10.0",
        ),
        # A required key of a list item names the item's own line.
        ("[litter]\nhotspots = [{ x = 1, y = 2 }]\n", "hotspots", "litter.hotspots[0]: missing required key"),
    ],
)
def test_pydantic_checks_keys_types_and_ranges_in_one_line(body: str, needle: str, expect: str) -> None:
    text = HEAD + body
    msg = error_of(text)
    assert msg.startswith(f"bad.toml line {line_no(text, needle)}: {expect}"), msg
    assert "\n" not in msg


def test_the_first_mistake_in_the_file_is_the_one_reported() -> None:
    # pydantic sees both; the file's reader fixes them top to bottom, so the report follows the file.
    text = HEAD + "[weather]\ntemp_max_c = 99\n[robot]\nbatery = 3\n"
    assert "weather.temp_max_c = 99.0: must be between" in error_of(text)
    text = HEAD + "[robot]\nbatery = 3\n[weather]\ntemp_max_c = 99\n"
    assert "robot.batery: unknown key" in error_of(text)
