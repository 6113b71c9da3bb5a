"""Asset-selection jobs."""
