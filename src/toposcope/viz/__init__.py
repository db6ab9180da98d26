"""Plots: functions take arrays (and an optional matplotlib ``ax``), draw, and return the artists.
They compute nothing beyond what drawing needs."""
