"""The benchmarks bench/run knows, by the key each prints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _lazy(module: str, fn: str) -> Callable[[], Any]:
    def run() -> Any:
        import importlib

        return getattr(importlib.import_module(module), fn)()

    run.__name__ = fn
    return run


BENCHMARKS: dict[str, Callable[[], Any]] = {
    "core_step_us": _lazy("bench.core", "core_step_us"),
    "tick_cpu_ms": _lazy("bench.app", "tick_cpu_ms"),
    "rss_mb": _lazy("bench.app", "rss_mb"),
    "start_to_ready_s": _lazy("bench.app", "start_to_ready_s"),
    "obstacle_to_brake_ms": _lazy("bench.app", "obstacle_to_brake_ms"),
    "link_loss_to_brake_ms": _lazy("bench.bridge", "link_loss_to_brake_ms"),
    "frame_to_pins_us": _lazy("bench.bridge", "frame_to_pins_us"),
    "protocol_roundtrips_per_s": _lazy("bench.bridge", "protocol_roundtrips_per_s"),
    "sim_speed_x": _lazy("bench.sim", "sim_speed_x"),
    "mqtt_fleet": _lazy("bench.mqtt_fleet", "mqtt_fleet"),
}
# The measurements behind tick_cpu_ms and obstacle_to_brake_ms (each measured once per bench/run), and the
# narrow figures these two used to be, under names that say what they cover.
BENCHMARKS["run_cpu"] = _lazy("bench.app", "run_cpu")
BENCHMARKS["run_cpu_link"] = _lazy("bench.app", "run_cpu_link")
BENCHMARKS["run_cpu_link_panel"] = _lazy("bench.app", "run_cpu_link_panel")
BENCHMARKS["link_thread_cpu"] = _lazy("bench.app", "link_thread_cpu")
BENCHMARKS["obstacle_detail"] = _lazy("bench.app", "obstacle_detail")
BENCHMARKS["core_obstacle_to_frame_ms"] = _lazy("bench.app", "core_obstacle_to_frame_ms")
BENCHMARKS["core_tick_cpu_ms"] = _lazy("bench.core", "core_tick_cpu_ms")
BENCHMARKS["nav_step_us"] = _lazy("bench.nav", "nav_step_us")
BENCHMARKS["site_load_ms"] = _lazy("bench.nav", "site_load_ms")
