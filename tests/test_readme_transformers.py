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


def test_readme_prune_save_reload_generate_example_runs():
    text = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
    section = text.split("## Transformers: prune, save, reload with `transformers`, generate", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the documented example
    assert type(scope["reloaded"]) is type(scope["model"])
    params = {k: v.shape for k, v in scope["reloaded"].state_dict().items()}
    assert params == {k: v.shape for k, v in scope["model"].state_dict().items()}
    assert scope["model"].model.layers[0].mlp.up_proj.out_features < 128  # it was pruned
