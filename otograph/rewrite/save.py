"""Saving compact models: ``model.pt2``, ``state_dict.pt`` and a standalone ``model.py``.

:func:`save_compact` writes a compact ``GraphModule`` three ways:

* ``model.pt2`` — ``torch.export.save`` of the compact graph (batch size, sequence length and image
  size dynamic where the code allows them); ``torch.export.load(path).module()`` runs it with only
  ``torch`` installed;
* ``state_dict.pt`` — its tensors, loadable with ``torch.load(..., weights_only=True)``;
* ``model.py`` — the fx code as a plain ``nn.Module`` that rebuilds every submodule from
  ``torch.nn`` and loads ``state_dict.pt`` (``from model import load; net = load()``), written only
  when every submodule can be rebuilt that way, else the bare fx code with a note.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from otograph.fileio import atomic_write, save_tensors, write_text
from otograph.tracing.export import auto_dynamic_shapes
from otograph.tracing.values import normalize_inputs

__all__ = ["save_compact", "load_exported", "standalone_source", "export_program", "ExportedModule"]

log = logging.getLogger(__name__)


def export_program(model: nn.Module, args: tuple, kwargs: dict | None = None) -> torch.export.ExportedProgram:
    """``torch.export`` in eval mode, every input axis the code leaves free dynamic (batch, sequence
    length, image size), else static."""
    model.eval()
    kwargs = kwargs or {}
    try:
        return torch.export.export(model, args, kwargs, dynamic_shapes=auto_dynamic_shapes(model, args, kwargs),
                                   strict=False)
    except Exception as e:  # noqa: BLE001 - a static export is still a valid artefact
        log.info("dynamic-shape export failed (%s); exporting with static shapes", e)
    return torch.export.export(model, args, kwargs, strict=False)


class ExportedModule(nn.Module):
    """An exported program's module that tolerates ``.eval()``/``.train()`` (it is eval-only)."""

    def __init__(self, module: nn.Module, path: str = ""):
        super().__init__()
        self.module = module
        self.path = path

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def train(self, mode: bool = True) -> ExportedModule:  # the graph is fixed in eval mode
        return self


def load_exported(path: str | os.PathLike) -> ExportedModule:
    """Load a ``.pt2`` as a runnable module (the example inputs are on ``.example_inputs``)."""
    ep = torch.export.load(str(path))
    mod = ExportedModule(ep.module(), str(path))
    ex = getattr(ep, "example_inputs", None)
    args = tuple(ex[0]) if ex else ()
    mod.example_inputs = (args[0] if len(args) == 1 else args) if args else None
    return mod


# ---------------------------------------------------------------------------- standalone code

_HEADER = '''"""Compact model written by otograph: plain torch, no otograph needed.

    from model import load        # with this folder on sys.path
    net = load()                  # reads state_dict.pt next to this file (weights_only=True)
"""
'''

_LOADER = '''

def load(state_dict_path=None) -> {cls}:
    """Build the model and load its tensors (``state_dict.pt`` beside this file by default)."""
    import os

    path = state_dict_path or os.path.join(os.path.dirname(os.path.abspath(__file__)), "state_dict.pt")
    model = {cls}()
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()
'''


def _rebuild_expr(m: nn.Module) -> str | None:
    """``repr(m)`` when evaluating it in ``torch.nn`` gives an equal module, else None."""
    if m.__class__.__module__.split(".")[:2] != ["torch", "nn"] or list(m.children()):
        return None
    text = repr(m)
    ns = {**vars(nn), "torch": torch, "inf": float("inf"), "nan": float("nan")}
    try:
        new = eval(text, ns)  # noqa: S307 - text is a torch.nn repr built above
    except Exception:  # noqa: BLE001
        return None

    def attrs(x):
        return {k: v for k, v in vars(x).items() if not k.startswith("_") and k != "training"}

    same = type(new) is type(m) and attrs(new) == attrs(m) and {
        k: v.shape for k, v in new.state_dict().items()} == {k: v.shape for k, v in m.state_dict().items()}
    return text if same else None


def _tensors(gm: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer (persistent or not) by name: what ``state_dict.pt`` holds."""
    out = {k: v.detach() for k, v in gm.named_parameters()}
    out.update({k: v.detach() for k, v in gm.named_buffers()})
    return out


def standalone_source(gm: fx.GraphModule, class_name: str = "CompactModel") -> str | None:
    """Python source of a plain ``nn.Module`` equivalent to ``gm``, or None if one cannot be written."""
    from torch.fx.graph_module import _format_import_block
    from torch.package import sys_importer

    modules = dict(gm.named_modules())
    called = [n.target for n in gm.graph.nodes if n.op == "call_module"]
    lines = [f"class {class_name}(torch.nn.Module):", "    def __init__(self):", "        super().__init__()"]
    done: set[str] = set()
    for target in called:
        if target in done:
            continue
        done.add(target)
        expr = _rebuild_expr(modules[target])
        if expr is None:
            log.info("model.py: %s (%s) has no plain torch.nn constructor", target, type(modules[target]).__name__)
            return None
        lines.append(f"        _put(self, {target!r}, {expr})")
    owned = {f"{t}.{k}" for t in done for k in modules[t].state_dict(keep_vars=True)}
    params = dict(gm.named_parameters())
    for name, t in _tensors(gm).items():
        if name in owned:
            continue
        if any(name.startswith(f"{c}.") for c in done):
            return None  # a non-persistent buffer of a rebuilt module: keep it simple
        empty = f"torch.empty({list(t.shape)}, dtype={t.dtype})"
        value = f"torch.nn.Parameter({empty})" if name in params else empty
        kind = "param" if name in params else "buffer"
        lines.append(f"        _put(self, {name!r}, {value}, {kind!r})")
    code = gm.graph.python_code(root_module="self")
    imports = _format_import_block(code.globals, sys_importer)
    body = "\n".join("    " + ln if ln.strip() else "" for ln in code.src.strip("\n").splitlines())
    helper = '''

def _put(root, path, value, kind="module"):
    *parents, leaf = path.split(".")
    for p in parents:
        if not hasattr(root, p):
            root.add_module(p, torch.nn.Module())
        root = getattr(root, p)
    if kind == "buffer":
        root.register_buffer(leaf, value)
    elif kind == "param":
        root.register_parameter(leaf, value)
    else:
        root.add_module(leaf, value)
'''
    return (_HEADER + "\nimport torch\nfrom torch.nn import *  # noqa: F403\n" + imports + "\n" + helper
            + "\n\n" + "\n".join(lines) + "\n\n" + body + "\n" + _LOADER.format(cls=class_name))


def _check_source(path: Path, gm: nn.Module, args: tuple, kwargs: dict) -> bool:
    spec = importlib.util.spec_from_file_location(f"_otograph_check_{uuid.uuid4().hex}", path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
        net = mod.load(str(path.parent / "state_dict.pt"))
        with torch.no_grad():
            a, b = gm(*args, **kwargs), net(*args, **kwargs)
        return bool(torch.equal(a, b)) if isinstance(a, torch.Tensor) else True
    except Exception as e:  # noqa: BLE001
        log.info("model.py does not reproduce the model (%s)", e)
        return False
    finally:
        sys.modules.pop(spec.name, None)


def save_compact(gm: fx.GraphModule, example_inputs: Any, folder: str | os.PathLike, *,
                 onnx: bool = False) -> dict[str, Any]:
    """Write ``model.pt2``, ``state_dict.pt`` and ``model.py`` for ``gm`` into ``folder``, and with
    ``onnx`` also ``model.onnx`` (from the exported program, the same dynamic axes).

    Returns ``{"pt2": bool, "standalone_py": bool, "dynamic_batch": bool}`` (and ``"onnx": bool``).
    """
    folder = Path(folder)
    args, kwargs = normalize_inputs(example_inputs)
    gm.eval()
    info: dict[str, Any] = {"pt2": False, "standalone_py": False, "dynamic_batch": False}
    ep = None
    try:
        ep = export_program(gm, args, kwargs)
        with atomic_write(folder / "model.pt2") as f:
            torch.export.save(ep, f)
        info["pt2"] = True
        info["dynamic_batch"] = any(not isinstance(d, int) for d in _input_dims(ep))
    except Exception as e:  # noqa: BLE001 - state_dict + code still let the user rebuild it
        log.warning("torch.export failed, no model.pt2 written: %s", e)
        info["pt2_error"] = f"{type(e).__name__}: {e}"
    save_tensors(_tensors(gm), folder / "state_dict.pt")
    src = standalone_source(gm)
    if src is not None:
        write_text(folder / "model.py", src)
        info["standalone_py"] = _check_source(folder / "model.py", gm, args, kwargs)
    if not info["standalone_py"]:
        write_text(folder / "model.py", "# fx code of the compact model; it needs the original submodule classes.\n"
                   "# Use model.pt2 (torch.export.load(path).module()) for a standalone model.\n" + gm.code)
    if onnx:
        from otograph.rewrite.onnx import save_onnx

        try:
            save_onnx(ep if ep is not None else gm, (args, kwargs), folder / "model.onnx")
            info["onnx"] = True
        except Exception as e:  # noqa: BLE001 - the other files are still the compact model
            log.warning("ONNX export failed, no model.onnx written: %s", e)
            info["onnx"], info["onnx_error"] = False, f"{type(e).__name__}: {e}"
    return info


def _input_dims(ep: torch.export.ExportedProgram) -> list:
    dims = []
    for n in ep.graph.nodes:
        if n.op == "placeholder" and n.name in ep.graph_signature.user_inputs:
            val = n.meta.get("val")
            if isinstance(val, torch.Tensor) and val.ndim:
                dims.append(val.shape[0])
    return dims
