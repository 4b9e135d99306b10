"""Set-up for the tracker's map page: its pinned browser libraries (pom.xml) and the browser for its tests."""
