"""Fixtures for the alarm unit tests."""

from alarms_testkit import clock, make_pipeline  # noqa: F401  (fixtures)
