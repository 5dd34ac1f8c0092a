"""The README's transformers example runs as written."""

import re
from pathlib import Path

import pytest

pytest.importorskip("transformers")


def test_readme_transformers_example_runs():
    text = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
    section = text.split("## Transformers and the export frontend", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the documented example
    assert sum(p.numel() for p in scope["compact"].parameters()) < sum(p.numel() for p in scope["model"].parameters())
