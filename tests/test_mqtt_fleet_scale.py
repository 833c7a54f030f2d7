"""A hundred robots on one real Mosquitto for ten simulated minutes, the broker restarted at minute five.

What this proves: the real MqttBridge class, a hundred instances each with its own connection and disk spool, fed
by light simulated robots (state changes, battery, a moving GPS fix, ~10 alerts per robot) on a virtual clock,
delivers every alert exactly as raised to a collector with a persistent session, including those raised while the
broker was down (spooled, then flushed on reconnection), and every bridge reconnects by itself. It does not run
a hundred full simulators or supervisors (too heavy for two cores); `bench/run mqtt_fleet` runs the same fleet at
real time for the figures in docs/performance.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.mqtt_fleet import run_fleet
from tests.mqtt_broker import MOSQUITTO

pytestmark = pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="needs Debian's mosquitto")


def test_a_hundred_robots_ten_minutes_broker_restart_no_alert_lost(tmp_path: Path) -> None:
    r = run_fleet(robots=100, sim_s=600.0, dt=0.5, restart_at=300.0, outage_s=20.0, workdir=tmp_path)
    assert r["alerts_raised"] >= 500, r  # enough alerts to mean something (seeded: ~10 per robot)
    assert r["alerts_during_outage"] >= 10, r  # some were raised while the broker was down
    assert r["alerts_lost"] == 0, r["lost_ids"]
    assert r["spool_left"] == 0 and r["spool_dropped"] == 0 and r["loop_errors"] == 0, r
    assert r["per_robot"] == [2] * 100, (
        "every bridge connected, lost the broker and reconnected once by itself"
    )
    # QoS 0 states are not spooled; about 20 s x 100 robots are missed during the outage, the rest arrive.
    assert r["states_received"] >= 100 * (600 - 20 - 20), r
