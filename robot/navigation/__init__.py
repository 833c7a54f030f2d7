"""Navigation: the site file (route, geofence, shelter, parking) and the pure guidance function."""

from robot.navigation.navigator import NavConfig, NavState, guide, wheel_fractions
from robot.navigation.site import Site, demo_site, load_site

__all__ = ["NavConfig", "NavState", "Site", "demo_site", "guide", "load_site", "wheel_fractions"]
