"""SampleHub."""
