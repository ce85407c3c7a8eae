"""Shared fixtures: explicit settings, fresh stores, and a session-wide demo catalogue
built once from the real Trafford data in ../shared/data/real."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from landexplorer.catalog import Store, open_store
from landexplorer.settings import Settings

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real open-data bundle. Absent: skip locally, fail in CI."""
    if not (REAL_DATA / "SOURCES.md").exists():
        message = f"the real data bundle is not at {REAL_DATA}"
        if IN_CI:
            pytest.fail(message + " (required in CI)")
        pytest.skip(message)
    return REAL_DATA


@pytest.fixture
def settings(tmp_path: Path, real_data: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", demo_mirror=real_data)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = open_store(settings)
    yield s
    s.close()


@pytest.fixture(scope="session")
def demo_settings(tmp_path_factory: pytest.TempPathFactory, real_data: Path) -> Settings:
    """Settings of a catalogue holding the whole demo (built once per test session).
    Tests must not change it; take ``store`` for a catalogue of your own."""
    from landexplorer.layers.demo import load_demo

    data_dir = tmp_path_factory.mktemp("demo") / "data"
    demo = Settings(data_dir=data_dir, demo_mirror=real_data)
    s = open_store(demo)
    load_demo(s, demo)
    s.close()
    return demo


@pytest.fixture
def demo_store(demo_settings: Settings) -> Iterator[Store]:
    s = open_store(demo_settings)
    yield s
    s.close()
