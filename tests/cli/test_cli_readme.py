"""The README's code runs as written, and its commands and files exist."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
#: What makes the ResNet-18 example fast: tiny images, few steps, one thread; later flags win in argparse.
QUICK = ("--input-shape", "1,3,32,32", "--epochs", "2", "--finetune-epochs", "1", "--batch-size", "4",
         "--threads", "1", "-q")


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def _is_weights_example(code: str) -> bool:
    return "resnet18_pets.pt" in code


def test_readme_library_example_runs(tmp_path, monkeypatch, capsys):
    blocks = [code for code in _python_blocks() if not _is_weights_example(code)]
    assert blocks, "the README has a Python example"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})  # noqa: S102
    out = capsys.readouterr().out
    assert "touches the unsupported op" in out and "soft_threshold" in out
    assert "SearchSpace(3 groups, 2 prunable" in out
    assert (tmp_path / "net.svg").exists() or (tmp_path / "net.dot").exists()


def _image_folder(root: Path, classes: tuple[str, ...], per_class: dict[str, int]) -> None:
    """A few random 16×16 PNGs per class under ``root/train`` and ``root/val``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")


def test_readme_prunes_a_trained_resnet18_with_distillation(tmp_path, monkeypatch, capsys):
    from otograph.cli import main

    [save] = [code for code in _python_blocks() if _is_weights_example(code)]
    [command] = [" ".join(b.replace("\\\n", " ").split()) for b in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
                 if "--weights" in b]
    argv = shlex.split(command)
    assert argv[:3] == ["otograph", "prune", "torchvision:resnet18"]
    for flag in ("--weights resnet18_pets.pt", "--target-flops 0.5", "--distill", "--data imagefolder:pics"):
        assert flag in command
    monkeypatch.chdir(tmp_path)
    exec(compile(save, str(README), "exec"), {"__name__": "readme"})  # noqa: S102 - writes resnet18_pets.pt
    _image_folder(tmp_path / "pics", ("cat", "dog"), {"train": 6, "val": 2})
    assert main([*argv[1:], *QUICK]) == 0, capsys.readouterr().err
    out = argv[argv.index("--out") + 1]
    run = json.loads((tmp_path / out / "run.json").read_text())
    b, a, t = run["before"], run["after"], run["training"]
    assert run["model"]["class"] == "ResNet" and run["data"]["num_classes"] == 2
    assert t["baseline"] == "start" and t["weights"] == "resnet18_pets.pt" and t["distill"] == 2.0
    assert len(run["history"]["hesso"]["distill"]) == t["steps"] == 3 * 3  # 12 images in batches of 4, 2+1 epochs
    assert 0.5 <= 1 - a["flops"] / b["flops"] <= 0.51
    assert run["exactness"]["max_rel_f64"] <= 1e-9 and run["exactness"]["same_argmax"] == 1.0
    assert all(g["kept"] % 8 == 0 or g["kept"] == g["units"] for g in run["groups"] if g["prunable"])
    assert "| FLOPs reduction | 50.0% |" in (tmp_path / out / "report.md").read_text()


def test_readme_names_real_commands_and_files():
    text = README.read_text()
    root = README.parent
    for path in ("scripts/prune.sh", "scripts/test.sh", "docs/cli.md", "docs/images/default_search_space.svg",
                 "docs/images/resnet50.svg"):
        assert path in text and (root / path).exists(), path
    assert "docs/zoo.md" in text


@pytest.mark.parametrize("command", ["trace", "viz", "prune", "verify", "report"])
def test_every_subcommand_is_documented(command):
    assert f"otograph {command}" in README.read_text()
    assert f"otograph {command}" in (README.parent / "docs" / "cli.md").read_text()
