"""Data: synthetic rain and image helpers shared by the CLI, the pipelines and the tests."""
