"""The lake's tools: create the tables, query them (DuckDB), maintain them, build silver and gold."""
