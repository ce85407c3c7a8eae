"""API fixtures: a TestClient over the demo catalogue, and a live uvicorn server started by
``landexplorer serve`` on loopback for real clients (GDAL, OWSLib, schemathesis)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import pytest

from landexplorer.api import create_app
from landexplorer.settings import Settings
from tests import live
from tests.people import bearer, make_token

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@pytest.fixture(scope="session")
def client(demo_settings: Settings) -> Iterator[TestClient]:
    """A TestClient over the (read-only) demo catalogue."""
    with TestClient(create_app(demo_settings)) as c:
        yield c


@pytest.fixture
def write_settings(settings: Settings) -> Settings:
    """Settings of a fresh, empty catalogue with a small upload limit (5 MB)."""
    return settings.model_copy(update={"max_upload_mb": 5})


@pytest.fixture
def auth(write_settings: Settings) -> dict[str, str]:
    """Bearer headers of a site admin's write token on ``write_settings``' catalogue."""
    return bearer(make_token(write_settings))


@pytest.fixture
def write_client(write_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(write_settings)) as c:
        yield c


@contextlib.contextmanager
def serve(settings: Settings, **env_extra: str) -> Iterator[str]:
    """Run ``landexplorer serve`` on a free loopback port for ``settings``; yield its URL."""
    with live.serve(settings.data_dir, database_url=settings.database_url, env=env_extra) as url:
        yield url


@pytest.fixture(scope="session")
def live_url(demo_settings: Settings) -> Iterator[str]:
    """``landexplorer serve`` on a free loopback port over the demo catalogue."""
    with serve(demo_settings) as url:
        yield url
