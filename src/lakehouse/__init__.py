"""Shared lake code (the Iceberg catalog, tables and settings) used by the archiver and the lake tools."""
