"""The ``otograph`` command-line application (the top layer: nothing in the library imports it)."""

from otograph.cli.main import main

__all__ = ["main"]
