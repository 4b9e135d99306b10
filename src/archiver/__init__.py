"""The archiver (`python -m archiver`, group flight-archiver): the topic into the lake's Iceberg table, exactly once."""
