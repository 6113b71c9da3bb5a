"""The ``samplehub`` command line."""
