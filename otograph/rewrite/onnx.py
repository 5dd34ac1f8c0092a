"""ONNX: a compact model (or a saved ``model.pt2``) as ``model.onnx``, dynamic axes kept.

:func:`save_onnx` runs ``torch.onnx.export(..., dynamo=True)`` (needs ``onnx`` and ``onnxscript``) on
an exported program, or exports a module first with every input axis the code leaves free dynamic
(batch, sequence length, image size), so ONNX Runtime runs it at other shapes. The file is written
beside its destination and renamed into place. ONNX Runtime computes in float32 with its own kernels:
expect agreement within float32 rounding (:data:`F32_BOUND`), not bit equality.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import torch

from otograph.errors import OtographError
from otograph.tracing.values import normalize_inputs

__all__ = ["save_onnx", "OnnxError", "F32_BOUND"]

log = logging.getLogger(__name__)

#: ONNX Runtime vs PyTorch in float32: ``max|Δ| ≤ F32_BOUND·max(1, max|y|)`` (64 float32 ulps of the
#: largest output: different kernels sum in different orders).
F32_BOUND = 64 * torch.finfo(torch.float32).eps


class OnnxError(OtographError):
    """The model could not be written as ONNX."""


def save_onnx(model: torch.nn.Module | torch.export.ExportedProgram, example_inputs: Any,
              path: str | os.PathLike) -> Path:
    """Write ``model`` as ONNX to ``path``; ``example_inputs`` as for ``otograph.trace`` (or an
    ``(args, kwargs)`` pair). An ``ExportedProgram`` keeps its own dynamic axes.

    Example:
        >>> import tempfile, torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
        >>> p = save_onnx(net, torch.randn(2, 4), tempfile.mkdtemp() + "/m.onnx")  # doctest: +SKIP
    """
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise OnnxError(f"writing ONNX needs the onnx and onnxscript packages ({e.name} is missing)",
                        hint="pip install 'otograph[onnx]' (onnx, onnxscript; onnxruntime to run the file)") from None
    from otograph.rewrite.save import export_program

    if isinstance(example_inputs, tuple) and len(example_inputs) == 2 and isinstance(example_inputs[1], dict):
        args, kwargs = example_inputs
    else:
        args, kwargs = normalize_inputs(example_inputs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        program = model if isinstance(model, torch.export.ExportedProgram) else export_program(model, args, kwargs)
        with contextlib.redirect_stdout(io.StringIO()):  # torch.onnx reports its steps on stdout
            onnx_program = torch.onnx.export(program, args, kwargs=kwargs, dynamo=True, verbose=False)
            onnx_program.save(str(tmp))
        os.replace(tmp, path)
    except Exception as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OtographError):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OnnxError(f"torch.onnx could not export the model: {type(e).__name__}: {first}",
                        hint="the model.pt2 and state_dict.pt files are still the compact model") from e
    log.info("wrote %s", path)
    return path
