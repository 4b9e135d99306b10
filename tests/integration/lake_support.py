"""Shared by the lake's integration tests: a namespace of its own on the real catalog (the stack's PostgreSQL)
and the real S3 (the stack's endpoint), removed with its files at the end."""
from __future__ import annotations

import uuid
from contextlib import contextmanager

import pytest

from infra.lake.create import ensure_bucket
from lakehouse import athena
from lakehouse.catalog import ensure_table, load_catalog
from lakehouse.settings import LakeSettings


@contextmanager
def fresh_lake(database_url: str):
    """(settings, catalog, positions table) in a fresh namespace. LAKE_NAMESPACE and DATABASE_URL stay set in the
    environment meanwhile, so a subprocess (make lake-sql, the gold job) sees the same lake; every table of
    the namespace is purged (files too) and the namespace dropped when the block ends, pass or fail."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAKE_NAMESPACE", f"test_{uuid.uuid4().hex[:10]}")
        mp.setenv("DATABASE_URL", database_url)
        settings = LakeSettings.from_env()
        ensure_bucket(settings)
        catalog = load_catalog(settings)
        try:
            yield settings, catalog, ensure_table(catalog, settings)
        finally:
            identifiers = catalog.list_tables(settings.namespace)
            for identifier in identifiers:
                catalog.purge_table(identifier)
            catalog.drop_namespace(settings.namespace)
            # The archiver publishes each commit for Athena (an S3 Tables table in the endpoint's memory).
            athena.unpublish(settings, [name for _, name in identifiers])
