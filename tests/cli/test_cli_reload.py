"""Saved compact models reload in a fresh process that cannot import otograph, with the same outputs."""

from __future__ import annotations

import subprocess
import sys

import torch

_CHILD = r'''
import sys
sys.modules["otograph"] = None  # any import of otograph (or hesso) now fails
sys.modules["hesso"] = None
import torch
folder = sys.argv[1]
x, expected = torch.load(sys.argv[2], weights_only=True)
exported = torch.export.load(folder + "/model.pt2").module()
y1 = exported(x)
sys.path.insert(0, folder)
import model
net = model.load()
y2 = net(x)
assert isinstance(net, torch.nn.Module) and not net.training
torch.testing.assert_close(y1, expected, rtol=1e-5, atol=1e-5)
torch.testing.assert_close(y2, expected, rtol=1e-5, atol=1e-5)
assert torch.equal(y1.argmax(1), expected.argmax(1))
loaded = [m for m in sys.modules if m.split(".")[0] in ("otograph", "hesso") and sys.modules[m] is not None]
assert not loaded, loaded
print("reloaded", tuple(y1.shape), sum(p.numel() for p in net.parameters()))
'''


def test_compact_model_reloads_without_otograph(pruned_run, tmp_path):
    # the expected outputs come from the trained full-size model (a different artefact)
    reference = torch.export.load(str(pruned_run / "reference.pt2")).module()
    x = torch.randn(7, 1, 8, 8)  # not the example's batch size: the batch axis is dynamic
    with torch.no_grad():
        expected = reference(x)
    torch.save((x, expected), tmp_path / "io.pt")
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(pruned_run), str(tmp_path / "io.pt")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    n_params = int(proc.stdout.split()[-1])
    import json

    assert n_params == json.loads((pruned_run / "run.json").read_text())["after"]["params"]
    assert "reloaded (7, 10)" in proc.stdout


def test_save_compact_of_a_compressed_custom_model(tmp_path):
    import otograph
    from otograph.rewrite.save import save_compact

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(16 * 6 * 6, 5)).eval()
    x = torch.randn(2, 3, 8, 8)
    space = otograph.search_space(net, x)
    compact = otograph.compress(net, space, {"0": list(range(0, 16, 2))})
    info = save_compact(compact, x, tmp_path)
    assert info == {"pt2": True, "standalone_py": True, "dynamic_batch": True}
    torch.save((x, compact(x).detach()), tmp_path / "io.pt")
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path), str(tmp_path / "io.pt")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[-1]) == sum(p.numel() for p in compact.parameters())
