import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture
def cli(capsys):
    """Run ``otograph ARGS`` in this process: returns (exit status, stdout, stderr)."""
    from otograph.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="package")
def pruned_run(tmp_path_factory):
    """The built-in default run (what ``bash scripts/prune.sh`` does), shared by the tests that read it."""
    from otograph.cli import main

    out = tmp_path_factory.mktemp("runs") / "default"
    assert main(["prune", "--out", str(out), "-q"]) == 0
    return out


@pytest.fixture
def subprocess_env() -> dict:
    """Environment for a child ``python``: finds ``cli.cli_models``, one torch thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    return env
