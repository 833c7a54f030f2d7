"""DirectLink's in-process SET_MOTORS exchange (SimArduino.take_motors) leaves both ends exactly as the bytes do."""

from __future__ import annotations

from typing import Any

from arduino_bridge.direct import DirectLink
from arduino_bridge.sim_arduino import SimArduino
from robot.core.types import ALL_BRAKED, BRAKE, MotorOutputs, PinState
from sim.run import FaultyArduino

FWD = MotorOutputs(PinState(1, 0, 200), PinState(1, 0, 180), *(PinState(1, 0, 255),) * 3)
BACK = MotorOutputs(PinState(0, 1, 90), PinState(0, 1, 90), BRAKE, BRAKE, BRAKE)


class Clock:
    """A settable clock for DirectLink."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Counting(FaultyArduino):
    """The simulator's Arduino, counting the commands it took without their bytes."""

    taken = 0

    def take_motors(self, outputs: Any, seq: int, now: float) -> int | None:
        ref = super().take_motors(outputs, seq, now)
        self.taken += ref is not None
        return ref


def _ends(link: DirectLink, dev: SimArduino) -> tuple[Any, ...]:
    return (
        link.healthy,
        link.stats(),
        link._session.seq,
        dev.pins,
        dev.session,
        dev.watchdog_tripped,
        dev.frames_ok,
        dev._tx_seq,
        dev.counters(),
    )


def test_in_process_exchange_matches_the_byte_exchange_step_for_step() -> None:
    fast_dev, slow_dev = Counting(seed=3), FaultyArduino(seed=3)
    fast_clock, slow_clock = Clock(), Clock()
    fast, slow = DirectLink(fast_dev, fast_clock), DirectLink(slow_dev, slow_clock)
    slow._take = None  # every frame through the bytes
    plan: list[tuple[float, MotorOutputs, str]] = []
    t = 0.0
    for i in range(400):
        t += 0.05
        what = ""
        if i == 100:
            what = "corrupt"  # bit flips: the bytes path, then CRC errors and a resend
        elif i == 200:
            what = "cut"
        elif i == 210:
            what = "replug"
        elif i == 300:
            t += 1.0  # the firmware's watchdog trips: NOT_READY, a fresh HELLO
        outputs = (FWD, BACK, ALL_BRAKED, MotorOutputs(*FWD))[(i // 7) % 4]
        plan.append((t, outputs, what))
    for t, outputs, what in plan:
        for link, dev, clock in ((fast, fast_dev, fast_clock), (slow, slow_dev, slow_clock)):
            clock.t = t
            if what == "corrupt":
                dev.corrupt(6)
            elif what in ("cut", "replug"):
                link.cut = what == "cut"
            dev.tick(t)
            link.send(outputs)
        assert _ends(fast, fast_dev) == _ends(slow, slow_dev), t
    assert fast_dev.taken > 300  # the in-process exchange was the common case
    assert fast_dev.corrupted == slow_dev.corrupted == 6
    assert fast.stats()["resyncs"] >= 1  # the watchdog trip went through the bytes too
    assert sum(fast_dev.counters().values()) > 0  # so did the garbled frame
