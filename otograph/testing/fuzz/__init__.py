"""The fuzzer: random models from a vocabulary covering every rule family and the patterns of
issue 13, the checks each model must pass, shrinking, and standalone reproductions.

``generate`` + ``render`` make a case's source; ``check_model`` runs the checks on a model given by
``build()`` and ``inputs(seed)``; ``run_case`` does both for one case; ``shrink`` minimises a
failing case; ``write_repro`` writes it as a standalone script. ``tools/fuzz.py`` drives them at
scale; ``otograph.testing.fuzz.strategies`` wraps the generator for hypothesis.
"""

from otograph.testing.fuzz.generator import PATTERNS, WRAPPERS, Program, generate, load, render, validate
from otograph.testing.fuzz.program import VOCAB, Case, RandomChooser, Step

__all__ = ["Case", "Step", "Program", "RandomChooser", "VOCAB", "PATTERNS", "WRAPPERS", "generate", "render",
           "load", "validate"]
