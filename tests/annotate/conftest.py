"""Fixtures of the annotation page's tests: the sample's catalog (read once), a store and a test client over it."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from frugalseg.annotate.catalog import Catalog, load_catalog
from frugalseg.annotate.store import AnnotationStore
from tests.helpers import sample_root


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(sample_root())


@pytest.fixture
def store(tmp_path, catalog):
    s = AnnotationStore(tmp_path / "ann.json", catalog)
    yield s
    s.close()


def make_client(app: Any, **kwargs: Any) -> Any:
    """Starlette's test client; Starlette 1.x warns that it prefers httpx2 to httpx, which older ones need."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    return TestClient(app, **kwargs)


@pytest.fixture
def client(store):
    from frugalseg.annotate.app import create_app

    with make_client(create_app(store, ["testserver"])) as c:
        yield c
