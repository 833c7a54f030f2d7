"""Pure decision core: state machine, priorities and motor decisions (standard library only)."""

from robot.core.decide import CoreConfig, CoreState, pins_for, step
from robot.core.rules import TABLE, Rule, Wheels

__all__ = ["TABLE", "CoreConfig", "CoreState", "Rule", "Wheels", "pins_for", "step"]
