"""Testing helpers: the float64 exactness check, and test models (tiny tricky topologies, small
transformers configs, CLI factories) that the tests, the tools and the benchmarks share."""

from otograph.testing.exact import ExactnessResult, check_exact, expected_params, random_units, to_double

__all__ = ["check_exact", "ExactnessResult", "random_units", "expected_params", "to_double"]
