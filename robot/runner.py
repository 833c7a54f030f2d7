"""The real-time runner: one asyncio loop where time and I/O meet the supervisor.

The parts whose reads block (HX711, I2C) are polled each in its own thread and their readings come back to the
loop; the loop reads the others (distance, side, rain, GPS: their drivers gather in their own threads) itself.
The supervisor steps at a fixed rate and at once on a safety-relevant change (obstacle inside the stop distance,
rain starting, link health flipping, an operator command); while the robot stands braked with nothing to do,
most ticks are the supervisor's idle ticks (Supervisor.tick, docs/behaviour.md). Any unexpected exception brakes
and exits non-zero; SIGTERM/SIGINT brake and exit cleanly.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from robot.core.boot import StopReason
from robot.core.types import PowerSource
from robot.errors import RamudroidError, StoreError
from robot.parts import POLLED
from robot.power_down import PowerDownPlan
from robot.supervisor import Reading, Supervisor, reading_age

log = logging.getLogger(__name__)

# Seconds between reads of each part. The distance and rain drivers wake the runner themselves when the road
# turns unsafe or rain starts, and the runner then reads them at once (the step it wakes reads them).
# Power at the control rate: a shadow must move the loads to the battery within the Pi supply's hold-up time.
POLL_PERIOD_S: dict[str, float] = {p.name: p.poll_s for p in POLLED if p.poll_s is not None}
# Seconds between the power monitor's reads while the loads run on the battery and the battery is well above
# critical. Then no reading calls for a fast reaction: the relay moves back to the panel only after
# power.switch_dwell_s (60 s) of a panel that carries the load, night and the reserve take minutes of dwell, and
# a reading goes stale only after control.sensor_stale_s (2 s). Near critical (below POWER_FAST_ABOVE_CRITICAL_V
# above power.critical_v, or at power.low_soc) and whenever the loads are on the panel, it is read at the
# control rate as before; the step that moves the relay to the panel reads it at once (docs/performance.md,
# "The Pi tick, fourth round").
POWER_RESTING_POLL_S = 0.2
POWER_FAST_ABOVE_CRITICAL_V = 1.0
# Parts whose drivers signal a safety-relevant change (obstacle inside the stop distance, rain starting).
SAFETY_PARTS = frozenset({"distance", "rain"})
# Parts whose reads never block: each returns what its driver's own thread or edge callbacks gathered, under a
# lock held only for that (GpioDistance's echo window, GpioRain's debouncer, SerialGps's last fix) or the simulated
# world's value. The loop reads them itself just before the step that uses them: a thread's wake-up costs more
# CPU than these reads (about 0.1 ms each on the measuring machine, docs/performance.md), and a reading taken at
# the step is never older than one the poller took before it. The blocking reads (the HX711's bits, the INA219
# on I2C) keep a poller thread each, so that a hung bus holds up neither the loop nor another part.
INLINE_PARTS = ("distance", "side", "rain", "gps")


# One part the runner polls: its name, its read, seconds between reads, and the driver's age of its value.
PolledRead = tuple[str, Callable[[], Any], float, Callable[[], float] | None]


class Poller:
    """Reads one part, or several whose reads never block, in a daemon thread and hands each reading (or
    failure) to the loop."""

    def __init__(
        self,
        parts: list[PolledRead],
        deliver: Callable[[str, Any, BaseException | None, float], None],
        clock: Callable[[], float] = time.monotonic,
        pace: Callable[[], float] | None = None,
    ) -> None:
        self.names = frozenset(name for name, _, _, _ in parts)
        self._parts = parts
        self._deliver = deliver
        self._clock = clock
        # Seconds to the next read, asked after each round of reads (its readings delivered); None: the shortest
        # period of the parts.
        self._pace = pace
        self._stop = threading.Event()
        # Held while no kick is pending; kick() releases it and the thread's timed acquire() both waits and takes
        # the kick. A plain lock's timed acquire is one C call: an Event's wait() and clear() cost 20-30 us more
        # CPU a wake-up on the measuring machine (docs/performance.md, "The Pi tick, sixth round").
        self._kick = threading.Lock()
        self._kick.acquire()
        label = "+".join(name for name, _, _, _ in parts)
        self._thread = threading.Thread(target=self._run, name=f"poll-{label}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        # The thread wakes at the shortest period of its parts; a part with a longer one is read every n-th
        # wake-up (n rounded down: never less often than its period). Counted, not timed: the runner's clock
        # may be a test's, standing still.
        period = min(p for _, _, p, _ in self._parts)
        every = [max(1, int(p / period + 1e-9)) for _, _, p, _ in self._parts]
        wakes = 0
        kicked = False
        while not self._stop.is_set():
            started = self._clock()
            for (name, read, _, age), n in zip(self._parts, every, strict=True):
                if kicked or wakes % n == 0:
                    try:
                        value = read()
                        value_age = age() if age is not None else 0.0
                    except (
                        Exception
                    ) as err:  # delivered and counted; the reading goes stale and the core brakes
                        self._deliver(name, None, err, 0.0)
                    else:
                        self._deliver(name, value, None, value_age)
            wakes += 1
            wait_s = period if self._pace is None else self._pace()
            kicked = self._kick.acquire(timeout=max(0.0, wait_s - (self._clock() - started)))

    def kick(self) -> None:
        """Read again now rather than at the next period (a driver saw something safety-relevant)."""
        with contextlib.suppress(RuntimeError):  # a kick already pending: one read serves both
            self._kick.release()

    def kick_pending(self) -> bool:
        """Whether a kick waits for the thread (it reads at once when it next waits)."""
        return not self._kick.locked()

    def close(self) -> None:
        self._stop.set()
        self.kick()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=1.0)


class Runner:
    """Drives a Supervisor in real time on the running asyncio loop."""

    def __init__(
        self,
        sup: Supervisor,
        *,
        rate_hz: float,
        clock: Callable[[], float] = time.monotonic,
        extra_tasks: list[Callable[[], Coroutine[Any, Any, None]]] | None = None,
        on_step: Callable[[float], None] | None = None,
        before_step: Callable[[float], None] | None = None,
        arm_power_down: Callable[[PowerDownPlan], bool] | None = None,
    ) -> None:
        self.sup = sup
        self.period = 1.0 / rate_hz
        self.clock = clock
        self.extra_tasks = extra_tasks or []
        self.on_step = on_step
        # Called with the step's time just before it, in the same wake-up of the loop (the simulator's world
        # catches up here: a task of its own would wake the loop a second time every tick).
        self.before_step = before_step
        self.ready = asyncio.Event()
        self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # The ticks are the loop's own callbacks, not a task awaiting a timer: one pass of the event loop a tick
        # instead of two (the timer's, then the task's), about 0.04 ms of CPU a tick on the measuring machine.
        self._done: asyncio.Future[int] | None = None  # the run's exit code, while it runs
        self._timer: asyncio.TimerHandle | None = None  # the next tick
        self._soon: asyncio.Handle | None = None  # a step asked for now (a wake, a stop, a late tick)
        self._stepping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._max_steps: int | None = None
        self._steps = 0
        self._next_tick = 0.0
        self._pollers: list[Poller] = []
        self._power_poller: Poller | None = None
        # The power poller's last wait was the resting one (written by its thread, read after each step).
        self._power_resting = False
        self._inbox: collections.deque[tuple[str, Any, BaseException | None, float]] = collections.deque()
        self._delivered: dict[str, Any] = {}  # each part's last value, written only by its own poller thread
        # The parts the loop reads itself (INLINE_PARTS): name, read, the driver's age of its value, the
        # supervisor's Reading it fills, and every how many steps it is read.
        self._inline: list[tuple[str, Callable[[], Any], Callable[[], float] | None, Reading, int]] = []
        self._read_all = True  # set by wake_threadsafe (any thread); the next step reads every inline part
        self.wakeups = 0
        self.stop_reason = StopReason.CLEAN
        self.arm_power_down = arm_power_down
        self.power_down: PowerDownPlan | None = None  # set when the run ended for a planned power-down

    # Called from poller threads. A reading waits in the inbox for the next step, which reads it first; only a
    # safety-relevant one wakes the loop at once. Waking the loop for each of ~80 readings a second cost more
    # CPU than the steps themselves (a thread switch, the self-pipe, the GIL), and the core sees a reading only
    # when it steps anyway.
    def _deliver(self, name: str, value: Any, err: BaseException | None, age_s: float = 0.0) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        before = self._delivered.get(name)
        if err is None:
            self._delivered[name] = value
        self._inbox.append((name, value, err, self.clock() - age_s))  # deque.append: thread-safe
        if err is not None or not self._safety_relevant(name, before, value):
            return
        with contextlib.suppress(RuntimeError):  # loop closing
            loop.call_soon_threadsafe(self._urgent)

    def _urgent(self) -> None:
        self._drain()
        self.wake()

    def _drain(self) -> None:
        """Hand every reading waiting in the inbox to the supervisor, oldest first."""
        inbox = self._inbox
        while inbox:
            name, value, err, at = inbox.popleft()
            if err is not None:
                self.sup.ingest_error(name, err)
            else:
                self.sup.ingest(name, value, at)

    def _safety_relevant(self, name: str, before: Any, value: Any) -> bool:
        # In the poller's thread: it reads the config and the core state the loop last decided, which a step
        # replaces whole and never changes in place.
        if name == "distance":
            return value is None or not value >= self.sup.cfg.stop_distance_m  # NaN is unsafe too
        if name == "rain":
            return bool(value) and not before
        if name == "power":
            # The panel falling short of the load: the relay must move before the Pi's supply sags.
            core = self.sup.core
            panel = getattr(value, "panel_w", None)
            return core.power is PowerSource.PANEL and panel is not None and panel < core.load_w
        return False

    def wake(self) -> None:
        """Step now rather than at the next tick (thread-unsafe: use wake_threadsafe from threads)."""
        self.wakeups += 1
        self._read_all = True
        if not self._stepping:  # a wake from inside the step itself is that step
            self._step_soon()

    def _step_soon(self) -> None:
        loop = self._loop
        if self._done is not None and self._soon is None and loop is not None:
            self._soon = loop.call_soon(self._tick)

    def wake_threadsafe(self) -> None:
        """Step at once; from any thread. Also makes the safety pollers read now, so the new value is seen."""
        self._read_all = True  # the next step reads every part the loop reads itself
        for p in self._pollers:
            if p.names & SAFETY_PARTS:
                p.kick()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.wake)

    def stop(self, reason: StopReason = StopReason.CLEAN) -> None:
        """End the run (the motors are braked on the way out); `reason` is recorded in the store."""
        self.stop_reason = reason
        self._stopped = True
        self._step_soon()

    def start_pollers(self) -> None:
        """Sort the parts: the non-blocking ones are read by the loop at its steps, the others in threads."""
        shared: list[PolledRead] = []
        for spec in POLLED:
            part = getattr(self.sup.parts, spec.name, None)
            if part is not None and spec.read is not None:
                period = POLL_PERIOD_S[spec.name]
                polled = (spec.name, getattr(part, spec.read), period, reading_age(part))
                if spec.name == "power":
                    self._power_poller = Poller([polled], self._deliver, self.clock, pace=self._power_pace)
                    self._pollers.append(self._power_poller)
                    self._follow_relay_after_each_step()
                elif spec.name not in INLINE_PARTS:
                    self._pollers.append(Poller([polled], self._deliver, self.clock))
                elif spec.name in SAFETY_PARTS and period < self.period - 1e-9:
                    # Polled faster than the loop ticks (a control rate below the default): a thread of its own
                    # reads it on time and wakes the loop when the reading calls for a step.
                    shared.append(polled)
                else:
                    # Read at every n-th step (n rounded down: never less often than its period; distance at
                    # the default 20 Hz at every step), and at every step a driver or a command woke.
                    every = max(1, int(period / self.period + 1e-9))
                    self._inline.append(
                        (spec.name, polled[1], polled[3], getattr(self.sup.readings, spec.name), every)
                    )
        if shared:
            self._pollers.append(Poller(shared, self._deliver, self.clock))
        for p in self._pollers:
            p.start()

    def _power_pace(self) -> float:
        """Seconds to the power monitor's next read (in its poller's thread, after each read): the control rate,
        or POWER_RESTING_POLL_S while the loads are on the battery and its last reading is well above critical."""
        fast = POLL_PERIOD_S["power"]
        # Flagged before the core's state is looked at: a step that puts the loads on the panel meanwhile then
        # sees the flag and kicks this poller, rather than leaving it asleep for the resting period.
        self._power_resting = True
        core, cfg = self.sup.core, self.sup.cfg
        last = self._delivered.get("power")
        resting = (
            core.power is PowerSource.BATTERY
            and not core.critical
            and last is not None
            and last.soc > cfg.low_soc
            and last.battery_v > cfg.critical_v + POWER_FAST_ABOVE_CRITICAL_V
        )  # a NaN reading fails these comparisons: read at the control rate
        if not resting:
            self._power_resting = False
            return fast
        return max(fast, POWER_RESTING_POLL_S)

    def _follow_relay_after_each_step(self) -> None:
        """After each step: once the core has put the loads on the panel, the resting power poller reads at once
        (and then at the control rate), so a shadow right after the switch is seen as fast as any other."""
        outer = self.on_step

        def on_step(now: float) -> None:
            poller = self._power_poller
            if self._power_resting and poller is not None and self.sup.core.power is not PowerSource.BATTERY:
                self._power_resting = False
                poller.kick()
            if outer is not None:
                outer(now)

        self.on_step = on_step

    def _read_inline(self, now: float, steps: int) -> None:
        """Read the non-blocking parts due at this step (all of them after a wake-up), as a poller would."""
        read_all = self._read_all
        self._read_all = False
        sup = self.sup
        for name, read, age, reading, every in self._inline:
            if not read_all and steps % every:
                continue
            try:
                value = read()
                at = now - age() if age is not None else now
            except Exception as err:  # counted; the reading goes stale and the core brakes
                sup.ingest_error(name, err)
                continue
            if name == "gps":
                sup.ingest(name, value, at)
            else:  # what Supervisor.ingest() does for every other part, without looking the reading up by name
                reading.value, reading.at = value, at

    async def run(self, *, install_signals: bool = True, max_steps: int | None = None) -> int:
        """Run until stopped; returns the exit code (0 clean stop, 1 after an unexpected error). Always brakes."""
        self._loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self.stop, StopReason.SIGNAL)
        self.sup.commands.on_put = self.wake_threadsafe
        link_flip = getattr(self.sup.link, "on_change", "absent")
        if link_flip != "absent":
            self.sup.link.on_change = lambda _healthy: self.wake_threadsafe()  # type: ignore[attr-defined]
        self.sup.brake()  # boot braked, whatever the Arduino was doing
        tasks = [asyncio.create_task(t(), name=getattr(t, "__name__", "task")) for t in self.extra_tasks]
        code = 0
        why = ""
        try:
            self.start_pollers()
            code = await self._loop_forever(tasks, max_steps)
        except Exception as err:
            cause = err.__cause__
            if isinstance(
                cause, RamudroidError
            ):  # a known failure (port in use, ...): its one line says it all
                log.error("%s: %s; braking and exiting", err, cause)
            else:
                log.exception("supervisor crashed: braking and exiting")
            code = 1
            why = f"{type(err).__name__}: {err}"
        finally:
            self.sup.close()
            self._record_stop(StopReason.CRASH if code else self.stop_reason, why)
            for p in self._pollers:
                p.close()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    self._loop.remove_signal_handler(sig)
        return code

    def _record_stop(self, reason: StopReason, detail: str) -> None:
        store = self.sup.store
        if store is None:
            return
        try:
            store.record_stop(reason, detail)
        except StoreError as err:
            log.error("%s", err)

    async def _loop_forever(self, tasks: list[asyncio.Task[None]], max_steps: int | None) -> int:
        assert self._loop is not None
        self._tasks, self._max_steps, self._steps = tasks, max_steps, 0
        self._next_tick = self.clock()
        self._done = self._loop.create_future()
        self._tick()
        try:
            return await self._done
        finally:
            self._done = None
            for handle in (self._timer, self._soon):
                if handle is not None:
                    handle.cancel()
            self._timer = self._soon = None

    def _tick(self) -> None:
        """One step, then the next one's timer; the run's end (a stop, an error) goes to the awaited future."""
        done = self._done
        for handle in (self._timer, self._soon):  # whichever did not call this one: this step is theirs too
            if handle is not None:
                handle.cancel()
        self._timer = self._soon = None
        if done is None or done.done():
            return
        try:
            code = self._step_once()
        except Exception as err:  # run() brakes, logs and exits 1
            done.set_exception(err)
            return
        if code is not None:
            done.set_result(code)

    def _step_once(self) -> int | None:
        """Step and schedule the next tick; an exit code when the run ends here."""
        if self._stopped:
            log.info("stopping: motors braked")
            return 0
        for t in self._tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise RuntimeError(f"background task {t.get_name()} failed") from t.exception()
        self._drain()
        now = self.clock()
        self._stepping = True
        try:
            if self.before_step is not None:
                self.before_step(now)
            if self._inline:
                self._read_inline(now, self._steps)
            self.sup.tick(now)  # a full step, or an idle tick while the robot waits braked (same frames out)
            self._steps += 1
            if self.on_step is not None:
                self.on_step(now)
        finally:
            self._stepping = False
        if not self.ready.is_set():
            self.ready.set()
        plan = self.sup.power_down_plan
        if plan is not None and self.arm_power_down is not None:
            if self.arm_power_down(plan):
                self.power_down = plan
                log.warning("stopping for a planned power-down: %s", plan.detail)
                return 0
            self.sup.refuse_power_down()
        if self._max_steps is not None and self._steps >= self._max_steps:
            return 0
        if now >= self._next_tick:
            self._next_tick = max(self._next_tick + self.period, now)
        timeout = self._next_tick - self.clock()
        if timeout > 0:
            assert self._loop is not None
            self._timer = self._loop.call_later(timeout, self._tick)
        else:  # late: step again once the loop has run what else is waiting
            self._step_soon()
        return None
