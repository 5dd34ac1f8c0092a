"""One line and exit status 2 for every bad input, never a traceback; the fix suggested fits the
error (issue 13 item 12)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

TINY = "otograph.testing.factories:tiny_cnn"
BAD = "tests.cli.bad_inputs"


def one_error(code: int, err: str) -> str:
    """The error of a failed command: exit 2, no traceback, and it ends stderr (after any progress lines)
    as `otograph: error: …` and at most a Fix line."""
    assert code == 2, err
    assert "otograph: error: " in err and "Traceback" not in err, err
    err = err[err.index("otograph: error: "):]
    assert len(err.strip().splitlines()) <= 2, err
    return err


@pytest.mark.parametrize("argv, says", [
    (["trace", "torchvision:resnet18?num_clases=3"],
     ["unexpected keyword argument 'num_clases'", "did you mean ?num_classes=3"]),
    (["trace", f"{TINY}?num_classes=x"], ["could not build", "check the spec's ?k=v values (num_classes='x' (str))"]),
    (["trace", "default", "--input-shape", "1,3,8,8"],
     ["default does not run on its input of shape 1,3,8,8", "expected input[1, 3, 8, 8] to have 1 channels",
      "give --input-shape with the shape the model takes (its first layer, a Conv2d, takes 1 channels)"]),
    (["trace", "--limit", "-1"], ["--limit must be ≥ 0, got -1"]),
    (["prune", "--threads", "-3"], ["--threads must be ≥ 1, got -3"]),
    (["prune", "--epochs", "0"], ["--epochs must be ≥ 1, got 0"]),
    (["prune", "--epochs", "-1"], ["--epochs must be ≥ 1, got -1"]),
    (["prune", "--batch-size", "0"], ["--batch-size must be ≥ 1, got 0"]),
    (["prune", "--lr", "0"], ["--lr must be > 0, got 0"]),
    (["prune", "--target-flops", "0"], ["--target-flops must be a fraction in (0, 1)", "got 0"]),
    (["prune", "--sparsity", "1"], ["--sparsity must be a fraction in (0, 1)", "got 1"]),
    (["viz", "--depth", "-1", "-o", "x.svg"], ["--depth must be ≥ 1, got -1"]),
    (["viz", "-o", "x.jpg"], ["unknown picture format; name a .svg, .pdf, .png or .dot file"]),
    (["verify", "default", "torchvision:resnet18"], ["the two models take different inputs", "(1, 8, 8)",
                                                     "(3, 224, 224)"]),
])
def test_bad_flags_and_specs(cli, argv, says, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(*argv, *(["--out", "run"] if argv[0] == "prune" else []))
    err = one_error(code, err)
    for text in says:
        assert text in err
    assert out == "" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, says", [
    (["torchvision:resnet18", "--data", "digits"],
     ["torchvision:resnet18 does not run on the samples of --data digits (shape 1×8×8)",
      "prune a model made for 1×8×8 samples"]),
    ([f"{TINY}?num_classes=5", "--data", "digits"],
     ["has class labels up to 9 but", "outputs 5 classes", "drop num_classes from the spec"]),
    ([TINY, "--data", "digits", "--input-shape", "1,1,16,16"],
     ["--input-shape 1,1,16,16 does not match the samples of --data digits (1×8×8)", "give --input-shape 1,1,8,8"]),
    ([TINY, "--data", f"{BAD}:empty_data"], ["the training data of --data", "is empty (0 batches)"]),
    ([TINY, "--data", f"{BAD}:dict_data"],
     ["yields dict batches (keys input_ids, labels)", "not supported by prune", "HESSO in your own training loop"]),
    ([f"{BAD}:keyword_model", "--data", f"{BAD}:dict_data"], ["takes dict example inputs"]),
])
def test_model_and_data_that_do_not_fit(cli, argv, says, tmp_path):
    err = one_error(*cli("prune", *argv, "--no-baseline", "-q", "--out", tmp_path / "run")[::2])
    for text in says:
        assert text in err
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_image_is_named(cli, tmp_path):
    pytest.importorskip("torchvision")
    from PIL import Image

    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp_path / "imgs" / split / c).mkdir(parents=True)
            for k in range(2):
                Image.new("L", (8, 8), 60 * k).save(tmp_path / "imgs" / split / c / f"{k}.png")
    bad = tmp_path / "imgs" / "train" / "b" / "broken.png"
    bad.write_bytes(b"not a png")
    err = one_error(*cli("prune", TINY, "--data", f"imagefolder:{tmp_path / 'imgs'}", "--input-shape", "2,1,8,8",
                         "--batch-size", "2", "--periods", "1", "--no-baseline", "-q",
                         "--out", tmp_path / "run")[::2])
    assert f"cannot read the image {bad}" in err and "remove or replace that file" in err
    assert not (tmp_path / "run").exists()


def test_viz_removed_units_file(cli, tmp_path):
    cases = {"typo.json": ('{"layer1.conv": [0]}', ["names group 'layer1.conv'", "the closest is 'layer1.conv1'"]),
             "bad.json": ("{bad", ["bad.json is not valid JSON"]),
             "range.json": ('{"layer1.conv1": [16]}', ["group 'layer1.conv1' has 16 units", "it lists 16"]),
             "form.json": ("[1, 2]", ["form.json must map group ids to lists of unit numbers"])}
    for name, (text, says) in cases.items():
        (tmp_path / name).write_text(text)
        err = one_error(*cli("viz", "-o", tmp_path / "x.dot", "--removed", tmp_path / name)[::2])
        for s in says:
            assert s in err
    assert not (tmp_path / "x.dot").exists()


def test_report_of_a_folder_that_is_not_a_run(cli, tmp_path):
    err = one_error(*cli("report", tmp_path)[::2])
    assert "is not a folder written by `otograph prune` (no run.json)" in err
    (tmp_path / "run.json").write_text("{}")
    err = one_error(*cli("report", tmp_path)[::2])
    assert "run.json is not the record of a prune run" in err
    (tmp_path / "run.json").write_text("{not json")
    err = one_error(*cli("report", tmp_path)[::2])
    assert "run.json is not the record of a prune run (JSONDecodeError" in err


def test_frontend_auto_says_it_fell_back_and_the_record_keeps_it(cli, tmp_path):
    code, out, err = cli("trace", f"{BAD}:shape_branch", "--frontend", "auto")
    assert code == 0 and "conv" in out
    assert err.strip() == (f"--frontend auto: torch.fx could not trace {BAD}:shape_branch, so torch.export did "
                           f"(-v says why)")
    code, _, err = cli("prune", f"{BAD}:shape_branch", "--frontend", "auto", "--data",
                       "otograph.testing.factories:random_data", "--epochs", "1", "--batch-size", "16",
                       "--no-baseline", "-q",
                       "--out", tmp_path / "run")
    assert code == 0, err
    assert "torch.export did" in err
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["space"]["frontend"] == "export" and run["options"]["frontend"] == "auto"
    code, _, err = cli("viz", tmp_path / "run", "-o", tmp_path / "run.dot")  # redrawn with the run's frontend
    assert code == 0, err
    assert "units removed" in (tmp_path / "run.dot").read_text()


def test_ctrl_c_during_start_up(cli, monkeypatch):
    import importlib

    cli_main = importlib.import_module("otograph.cli.main")

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "build_parser", interrupted)
    code, out, err = cli("trace")
    assert code == 130 and out == "" and err == "otograph: error: interrupted; nothing half-written was left behind\n"


def test_a_closed_pipe_ends_quietly(subprocess_env):
    proc = subprocess.Popen([sys.executable, "-m", "otograph.cli", "trace", "--json"], env=subprocess_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before anything is written, as with `| head -1`
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err
    assert err == ""


def test_an_unexpected_error_is_one_line_and_status_1(cli, monkeypatch):
    import otograph

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(otograph, "search_space", broken)
    monkeypatch.setattr("otograph.cli.checks.model_error", lambda *a: None)  # the model itself runs
    code, out, err = cli("trace")
    assert code == 1 and out == "" and "Traceback" not in err
    assert err == ("otograph: error: internal error (a bug in otograph, please report it): ZeroDivisionError: "
                   "division by zero; rerun with -v for the traceback\n")
