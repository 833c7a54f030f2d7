"""Navigation: the site (route, geofence, shelter, parking) and the pure guidance function.

Pure: no I/O; robot/site_file.py reads a site file into a Site."""

from robot.navigation.navigator import NavConfig, NavState, guide, wheel_fractions
from robot.navigation.site import Site

__all__ = ["NavConfig", "NavState", "Site", "guide", "wheel_fractions"]
