"""Documents generated from the code and from test results: the settings table, the reliability table."""
