"""Ramudroid supervisor: the Raspberry Pi side of the solar street-cleaning robot."""

__version__ = "0.1.0"
