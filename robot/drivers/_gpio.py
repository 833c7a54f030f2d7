"""Finding the gpiozero pin factory for a real part, with the one-line error when there is no GPIO."""

from __future__ import annotations

import warnings
from typing import Any

from robot.errors import HardwareUnavailable


def pin_factory_for(part: str, given: Any = None) -> Any:
    """The pin factory to use: `given` (tests pass MockFactory) or the machine's default.

    Raises HardwareUnavailable naming the config key to change when this machine has no GPIO.
    """
    if given is not None:
        return given
    try:
        from gpiozero import Device
    except ImportError as err:
        raise HardwareUnavailable(
            f'gpiozero is not installed: pip install gpiozero, or set hardware.{part} = "sim"'
        ) from err
    if Device.pin_factory is not None:
        return Device.pin_factory
    with warnings.catch_warnings():
        # gpiozero warns once per factory it tries; the single error below says it better.
        warnings.simplefilter("ignore")
        try:
            Device.pin_factory = Device._default_pin_factory()
        except Exception as err:
            raise HardwareUnavailable(
                f'no GPIO on this machine: set hardware.{part} = "sim" or run on a Raspberry Pi'
            ) from err
    return Device.pin_factory
