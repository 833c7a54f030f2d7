"""Bundled site files (GeoJSON)."""
