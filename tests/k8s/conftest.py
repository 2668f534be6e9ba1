"""Fixtures of the manifest tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.k8s.manifests import keda_dir


@pytest.fixture
def keda() -> Path:
    """KEDA's schemas (skipped locally when missing, failed under CI)."""
    return keda_dir()
