"""The benchmarks' model of the 115200-baud wire to the Arduino (bench/app.py's obstacle_to_brake_ms)."""

from __future__ import annotations

import pytest

from bench.app import uart_last_byte_s


def test_a_frame_on_an_idle_wire_takes_ten_bit_times_a_byte() -> None:
    # 29 bytes (a SET_MOTORS frame) x 10 bits / 115200 baud = 2.517 ms after it was written.
    assert uart_last_byte_s([(1.0, 29)]) == [pytest.approx(1.0 + 29 * 10 / 115200)]


def test_a_frame_written_while_the_wire_is_busy_waits_for_the_one_before() -> None:
    first, second, later = uart_last_byte_s([(0.0, 29), (0.001, 29), (1.0, 10)])
    assert first == pytest.approx(29 * 10 / 115200)
    assert second == pytest.approx(first + 29 * 10 / 115200)  # queued behind the first, not from 1 ms
    assert later == pytest.approx(1.0 + 10 * 10 / 115200)  # the wire was idle again by then
