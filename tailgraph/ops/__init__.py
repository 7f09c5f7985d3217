"""Geometry operations shared by data, modeling and evaluation: boxes and tracks."""
