"""Tracing leaves the model exactly as it was.

Symbolic tracing runs ``forward`` with proxies for inputs and parameters but with the real buffers:
a counter ``self.count += 1`` or an EMA updated under ``torch.no_grad()`` would be advanced (and an
in-place update mixed with a proxy can leave the buffer attached to an autograd graph).
:func:`unchanged` snapshots what a forward pass can change (buffer values and identities, modes,
``requires_grad``, attributes) and puts it all back, telling the caller which buffers the traced
code updated behind the graph's back.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

__all__ = ["unchanged", "Changes"]

log = logging.getLogger(__name__)


@dataclass
class Changes:
    """What the traced code changed (and :func:`unchanged` restored): buffer names."""

    buffers: list[str] = field(default_factory=list)


@contextlib.contextmanager
def unchanged(model: torch.nn.Module) -> Iterator[Changes]:
    """Run the block, then restore ``model``'s buffers, modes, ``requires_grad`` flags, tensor
    identities and attributes; the yielded :class:`Changes` lists the buffers that had changed."""
    mods = list(model.named_modules(remove_duplicate=False))
    saved = []
    for _, m in mods:
        saved.append((m, m.training, dict(m._parameters), dict(m._buffers), set(vars(m))))
    values = {id(t): (t, t.detach().clone(), t.requires_grad) for _, m in mods for t in m._buffers.values()
              if t is not None}
    grads = {id(p): (p, p.requires_grad, p._version) for _, m in mods for p in m._parameters.values() if p is not None}
    changes = Changes()
    try:
        yield changes
    finally:
        names = {id(t): f"{prefix}.{n}".lstrip(".") for prefix, m in mods for n, t in m._buffers.items()
                 if t is not None}
        for m, training, params, buffers, attrs in saved:
            m.training = training
            m._parameters.clear()
            m._parameters.update(params)
            m._buffers.clear()
            m._buffers.update(buffers)
            for extra in set(vars(m)) - attrs:  # attributes forward added while being traced
                delattr(m, extra)
        with torch.no_grad():
            for key, (t, before, req) in values.items():
                changed = (t.grad_fn is not None or t.shape != before.shape
                           or (not t.is_meta and not torch.equal(t, before)))  # meta tensors hold no values
                if changed:
                    changes.buffers.append(names.get(key, "?"))
                    t.detach_()
                    if t.shape == before.shape:
                        t.copy_(before)
                    else:
                        t.set_(before)
                t.requires_grad_(req)
        for p, req, version in grads.values():
            p.requires_grad_(req)
            if p._version != version:
                log.warning("tracing changed a parameter in place (version %d → %d); its values may differ",
                            version, p._version)
