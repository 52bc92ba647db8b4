"""Shared pytest configuration for vosapp."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# CI runs derandomized: a property test fails there only for a reason a developer can
# reproduce with the same command. Developers keep random exploration (the default profile).
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# Shared fixtures (served switch, SIPp, free ports): tests/support/fixtures.py.
pytest_plugins = ["tests.support.fixtures"]
