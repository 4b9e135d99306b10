"""python -m infra.lake.create: the lake's S3 bucket, namespace, positions table and rejects table
(idempotent; `make deploy-resources` runs it). Says which catalog and warehouse it used."""
from __future__ import annotations

import argparse
import logging
import sys

import boto3
from botocore.exceptions import ClientError

from infra.stack.postgres import redact_url
from lakehouse.catalog import ensure_rejects_table, ensure_table, load_catalog
from lakehouse.settings import LakeSettings
from pipeline_common.logs import configure_logging
from pipeline_common.settings import ConfigError

logger = logging.getLogger("infra.lake.create")


def ensure_bucket(settings: LakeSettings) -> None:
    """The warehouse's bucket (MiniStack has none until asked; on AWS it may exist already)."""
    bucket = settings.warehouse_bucket
    if bucket is None:
        return
    s3 = boto3.client("s3", region_name=settings.aws_region)  # AWS_ENDPOINT_URL: boto3 reads it itself
    try:
        s3.head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    kwargs = {} if settings.aws_region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": settings.aws_region}}
    s3.create_bucket(Bucket=bucket, **kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.lake.create", description=__doc__)
    LakeSettings.add_flags(parser)
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = LakeSettings.from_args(args)
    except ConfigError as exc:
        print(f"lake: configuration error: {exc}", file=sys.stderr)
        return 2
    ensure_bucket(settings)
    catalog = load_catalog(settings)
    # A table whose files are gone (the local endpoint restarted without keeping S3) is replaced: its rows
    # are lost either way, and an archiver cannot write to it.
    table = ensure_table(catalog, settings, replace_lost=True)
    rejects = ensure_rejects_table(catalog, settings, replace_lost=True)
    print(f"lake: table {'.'.join(table.name())} and {'.'.join(rejects.name())} in catalog "
          f"{settings.catalog_name!r} ({redact_url(settings.catalog_url)}), warehouse {settings.warehouse}, "
          f"data at {table.location()}")
    # Athena on the local endpoint reads a published copy (src/lakehouse/athena.py); a no-op on AWS.
    from lakehouse.athena import publish_quietly
    publish_quietly(settings, table, rejects)
    return 0


if __name__ == "__main__":
    sys.exit(main())
