"""Every training test runs on one thread (the root conftest's ``one_thread``): the runs are tiny."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield
