"""Model and data specs shared by every command.

Models:

* ``default`` — the built-in :class:`~otograph.cli.models.SmallResNet` (input ``2,1,8,8``);
* ``torchvision:NAME[?k=v&...]`` — ``torchvision.models.get_model(NAME, weights=None, **kwargs)``;
* ``timm:NAME[?k=v&...]`` — ``timm.create_model(NAME, **kwargs)`` (needs ``timm``);
* ``module.path:factory[?k=v&...]`` — your own code: ``factory(**kwargs)`` returns a module, or a
  ``(module, example_inputs)`` pair;
* ``FILE.pt2`` — a saved ``torch.export`` program, or a folder written by ``otograph prune``;
* ``hf:PATH`` — a Hugging Face model from a local folder (``AutoModelForCausalLM`` for a causal LM,
  else ``AutoModel``; no hub access), traced by the export frontend on token ids of
  ``--input-shape BATCH,SEQ`` or ``--seq-len SEQ`` (:mod:`otograph.cli.hfmodels`).

Values in ``?k=v`` are Python literals where they parse (``num_classes=10``, ``pretrained=False``)
and strings otherwise. ``--input-shape 1,3,224,224`` overrides the spec's default input shape.

Data: ``digits`` (scikit-learn's digits), ``imagefolder:PATH`` (``PATH/train`` and ``PATH/val``, or one
folder split 80/20), ``module.path:factory`` returning ``(train_loader, val_loader)`` whose batches
are ``(inputs, targets)``.

Example:
    >>> parse_spec("torchvision:resnet18?num_classes=10&zero_init_residual=True")
    ('torchvision', 'resnet18', {'num_classes': 10, 'zero_init_residual': True})
    >>> parse_input_shape("1,3,64,64")
    (1, 3, 64, 64)
"""

from __future__ import annotations

import ast
import difflib
import importlib
import inspect
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import torch
from torch import nn

from otograph.errors import OtographError
from otograph.tracing import DEFAULT_FRONTEND

__all__ = ["SpecError", "DataError", "LoadedModel", "LoadedData", "parse_spec", "parse_input_shape",
           "load_model", "load_data", "peek_num_classes", "resolve_leaves", "frontend_for", "DEFAULT_MODEL",
           "DEFAULT_DATA"]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
DEFAULT_DATA = "digits"

_FORMS = ("default, torchvision:NAME[?k=v&...], timm:NAME, module.path:factory[?k=v], hf:PATH, "
          "a saved FILE.pt2, or a folder written by `otograph prune`")


class SpecError(OtographError):
    """A model spec could not be understood or loaded."""


class DataError(OtographError):
    """A data spec could not be understood or loaded."""


@dataclass
class LoadedModel:
    """A model ready to trace: the module, example inputs and where it came from."""

    model: nn.Module
    example_inputs: Any
    spec: str
    kind: str  # "default" | "torchvision" | "timm" | "factory" | "pt2" | "hf"
    options: dict = field(default_factory=dict)
    config: Any = None  # a Hugging Face model's config

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        x = self.example_inputs
        if isinstance(x, dict) and isinstance(x.get("input_ids"), torch.Tensor):
            x = x["input_ids"]
        return tuple(x.shape) if isinstance(x, torch.Tensor) else None


@dataclass
class LoadedData:
    train: Any
    val: Any
    spec: str
    num_classes: int | None = None


def _literal(v: str) -> Any:
    try:
        return ast.literal_eval(v)
    except (ValueError, SyntaxError):
        return {"true": True, "false": False, "none": None}.get(v.lower(), v)


def parse_spec(spec: str) -> tuple[str, str, dict]:
    """``"scheme:name?k=v"`` → ``(scheme, name, kwargs)``; a bare path gives ``("file", path, {})``."""
    spec = spec.strip()
    base, _, query = spec.partition("?")
    kwargs = {k: _literal(v) for k, v in parse_qsl(query, keep_blank_values=True)} if query else {}
    if base in ("", DEFAULT_MODEL):
        return "default", "", kwargs
    if base.startswith("hf:"):
        return "hf", base[3:], kwargs
    if ":" in base and not Path(base).exists():
        scheme, name = base.split(":", 1)
        if scheme in ("torchvision", "timm", "hf"):
            return scheme, name, kwargs
        if scheme and name:
            return "factory", base, kwargs
    return "file", base, kwargs


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        raise SpecError(f"--input-shape must be integers separated by commas (e.g. 1,3,224,224), "
                        f"got {text!r}") from None
    if not shape or any(s <= 0 for s in shape):
        raise SpecError(f"--input-shape must be positive integers, got {text!r}")
    return shape


def load_model(spec: str | None, input_shape: tuple[int, ...] | None = None,
               defaults: dict | None = None, seq_len: int | None = None) -> LoadedModel:
    """Build the model named by ``spec`` (see the module docstring) in eval mode.

    ``defaults`` are keyword arguments used when the spec does not give them and the factory
    accepts them (the CLI passes ``num_classes`` from the data set). ``seq_len``: the example's
    sequence length for ``hf:`` models.
    """
    scheme, name, kwargs = parse_spec(spec or DEFAULT_MODEL)
    if scheme == "hf":
        return _hf(name, kwargs, input_shape, seq_len, spec)
    if seq_len is not None:
        raise SpecError("--seq-len is for hf:PATH models; give other models --input-shape")
    loader = {"default": _default, "torchvision": _torchvision, "timm": _timm, "factory": _factory,
              "file": _file}[scheme]
    try:
        loaded = loader(name, kwargs, dict(defaults or {}))
    except (TypeError, ValueError) as e:  # a ?k=v key the constructor does not take, or a value it cannot use
        if isinstance(e, OtographError):
            raise
        raise _build_error(spec or DEFAULT_MODEL, kwargs, e) from e
    loaded.spec = spec or DEFAULT_MODEL
    if input_shape is not None:
        loaded.example_inputs = torch.randn(*input_shape)
    if loaded.example_inputs is None:
        raise SpecError(f"{loaded.spec}: no input shape is known for this model; give --input-shape "
                        f"(e.g. --input-shape 1,3,224,224)")
    to_eval(loaded.model)
    return loaded


def to_eval(model: nn.Module) -> None:
    """``model.eval()``; an exported program's module, eval-only already, refuses the call (torch 2.x)."""
    try:
        model.eval()
    except NotImplementedError:
        log.debug("%s refuses eval(); it is an eval-only exported module", type(model).__name__)


def _build_error(spec: str, kwargs: dict, e: Exception) -> SpecError:
    """One line for a model that could not be built, with a hint that fits what went wrong."""
    msg = f"could not build {spec}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    bad = re.search(r"unexpected keyword argument '(\w+)'", str(e))
    if bad:
        close = difflib.get_close_matches(bad.group(1), _keywords(e), n=1)
        fix = f"did you mean ?{close[0]}={kwargs.get(bad.group(1))}" if close else "remove it from the spec"
        return SpecError(msg, hint=f"the model takes no argument {bad.group(1)!r}: {fix}")
    if kwargs:
        given = ", ".join(f"{k}={v!r} ({type(v).__name__})" for k, v in kwargs.items())
        return SpecError(msg, hint=f"check the spec's ?k=v values ({given}); values are Python literals "
                                   f"(num_classes=10, weights=None), anything else is a string")
    return SpecError(msg)


def _keywords(e: Exception) -> list[str]:
    """Keyword names of the callable named in a ``X.__init__() got an unexpected keyword`` error: it is
    not entered, so it is looked up among the locals and globals of the frames that called it."""
    m = re.match(r"(\w+)(?:\.__init__)?\(\)", str(e))
    if not m:
        return []
    names: set[str] = set()
    tb = e.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        for cand in (*frame.f_locals.values(), frame.f_globals.get(m.group(1))):
            if callable(cand) and getattr(cand, "__name__", None) == m.group(1):
                names |= _params(cand)
        tb = tb.tb_next
    return sorted(names - {"self", "args", "kwargs"})


def resolve_leaves(model: nn.Module, names: tuple[str, ...] | list[str]) -> tuple:
    """``--leaf`` names as the tracer's leaf modules: a class name becomes its type, a path stays."""
    by_class = {type(m).__name__: type(m) for m in model.modules()}
    paths = {n for n, _ in model.named_modules()}
    out = []
    for n in names:
        if n in by_class:
            out.append(by_class[n])
        elif n in paths:
            out.append(n)
        else:
            raise SpecError(f"--leaf {n!r} is neither a submodule path nor a module class of this model",
                            hint="give a path from model.named_modules() or a class name")
    return tuple(out)


def frontend_for(loaded: LoadedModel, requested: str | None = None) -> str:
    """The tracing frontend: ``requested``, else ``export`` for a saved ``.pt2`` program or a Hugging Face
    model, else the default."""
    return requested or ("export" if loaded.kind in ("pt2", "hf") else DEFAULT_FRONTEND)


def _hf(name, kwargs, input_shape, seq_len, spec) -> LoadedModel:
    from otograph.cli.hfmodels import load_hf, token_inputs

    if seq_len is not None and seq_len < 1:
        raise SpecError(f"--seq-len must be at least 1, got {seq_len}")
    model, config = load_hf(name, kwargs)
    to_eval(model)
    x = token_inputs(model, config, input_shape, seq_len)
    return LoadedModel(model, x, spec, "hf", kwargs, config)


def _default(name, kwargs, defaults) -> LoadedModel:
    from otograph.cli.models import SmallResNet

    kw = {**{k: v for k, v in defaults.items() if k == "num_classes"}, **kwargs}
    return LoadedModel(SmallResNet(**kw), torch.randn(2, 1, 8, 8), "", "default", kw)


def _torchvision(name, kwargs, defaults) -> LoadedModel:
    try:
        import torchvision
    except ImportError:
        raise SpecError("torchvision:… models need torchvision: pip install torchvision") from None
    names = torchvision.models.list_models()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise SpecError(f"unknown torchvision model {name!r}{hint} "
                        f"(torchvision.models.list_models() has {len(names)})")
    kw = {"weights": None, **{k: v for k, v in defaults.items() if k == "num_classes"}, **kwargs}
    model = torchvision.models.get_model(name, **kw)
    size = kw.get("image_size") or (299 if name == "inception_v3" else 224)
    return LoadedModel(model, torch.randn(1, 3, size, size), "", "torchvision", kw)


def _timm(name, kwargs, defaults) -> LoadedModel:
    try:
        import timm
    except ImportError:
        raise SpecError(f"timm:{name} needs the timm package, which is not installed: pip install timm") from None
    kw = {"pretrained": False, **{k: v for k, v in defaults.items() if k == "num_classes"}, **kwargs}
    try:
        model = timm.create_model(name, **kw)
    except RuntimeError as e:
        raise SpecError(f"timm could not create {name!r}: {e}") from e
    size = tuple(getattr(model, "default_cfg", {}).get("input_size", (3, 224, 224)))
    return LoadedModel(model, torch.randn(1, *size), "", "timm", kw)


def _factory(name, kwargs, defaults) -> LoadedModel:
    mod_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as e:
        raise SpecError(f"cannot import {mod_name!r} for model spec {name!r}: {e}. Expected {_FORMS}") from e
    fn = getattr(module, attr, None)
    if fn is None:
        raise SpecError(f"module {mod_name!r} has no attribute {attr!r} (model spec {name!r})")
    kw = {**{k: v for k, v in defaults.items() if k in _params(fn)}, **kwargs}
    out = fn(**kw) if callable(fn) and not isinstance(fn, nn.Module) else fn
    example = None
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], nn.Module):
        out, example = out
    if not isinstance(out, nn.Module):
        raise SpecError(f"{name} returned {type(out).__name__}, expected an nn.Module or (module, example_inputs)")
    if example is None:
        shape = getattr(out, "example_input_shape", None) or getattr(fn, "example_input_shape", None)
        example = torch.randn(*shape) if shape else None
    return LoadedModel(out, example, "", "factory", kw)


def _file(name, kwargs, defaults) -> LoadedModel:
    path = Path(name)
    if path.is_dir():
        if (path / "model.pt2").exists():
            path = path / "model.pt2"
        else:
            raise SpecError(f"folder {name!r} holds no model.pt2 (expected a folder written by `otograph prune`)")
    if not path.exists():
        raise SpecError(f"unknown model spec {name!r}: no such file, and not one of: {_FORMS}")
    if path.suffix != ".pt2":
        raise SpecError(f"cannot load {name!r}: only torch.export .pt2 files are supported (save with "
                        f"torch.export.save); or name the model as {_FORMS}")
    from otograph.rewrite.save import load_exported

    try:
        mod = load_exported(path)
    except Exception as e:  # noqa: BLE001
        raise SpecError(f"could not load {name!r} with torch.export.load: {e}") from e
    return LoadedModel(mod, mod.example_inputs, "", "pt2", {})


# ----------------------------------------------------------------------------------------- data


def load_data(spec: str | None, *, batch_size: int = 64, seed: int = 0,
              input_shape: tuple[int, ...] | None = None) -> LoadedData:
    """``(train, val)`` loaders for a data spec (see the module docstring)."""
    spec = (spec or DEFAULT_DATA).strip()
    if spec == "digits":
        from otograph.cli.digits import digits_loaders

        try:
            train, val = digits_loaders(batch_size, seed)
        except ImportError as e:
            raise DataError("the digits data set needs scikit-learn, which is not installed",
                            hint="pip install 'otograph[digits]'") from e
        return LoadedData(train, val, spec, 10)
    if spec.startswith("imagefolder:"):
        return _imagefolder(spec, spec.split(":", 1)[1], batch_size, seed, input_shape)
    if ":" in spec:
        mod_name, _, attr = spec.partition(":")
        try:
            fn = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as e:
            raise DataError(f"cannot load data factory {spec!r}: {e}") from e
        out = fn(batch_size=batch_size) if "batch_size" in _params(fn) else fn()
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise DataError(f"{spec} must return (train_loader, val_loader), got {type(out).__name__}")
        return LoadedData(out[0], out[1], spec, getattr(fn, "num_classes", None))
    raise DataError(f"unknown data spec {spec!r}; expected digits, imagefolder:PATH or module.path:factory")


def peek_num_classes(spec: str | None) -> int | None:
    """Number of classes of a data spec without loading it (None when unknown)."""
    spec = (spec or DEFAULT_DATA).strip()
    if spec == "digits":
        return 10
    if spec.startswith("imagefolder:"):
        path = Path(spec.split(":", 1)[1])
        path = path / "train" if (path / "train").is_dir() and (path / "val").is_dir() else path
        if path.is_dir():
            return sum(1 for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")) or None
    return None


def _params(fn) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def _imagefolder(spec, root, batch_size, seed, input_shape) -> LoadedData:
    path = Path(root)
    if not path.is_dir():
        raise DataError(f"{spec}: {root!r} is not a folder (expected PATH/CLASS/IMAGE files, or PATH/train "
                        f"and PATH/val)")
    try:
        from torchvision import datasets, transforms
    except ImportError:
        raise DataError("imagefolder: data needs torchvision: pip install torchvision") from None
    c, h, w = (input_shape[1:] if input_shape and len(input_shape) == 4 else (3, 224, 224))
    steps = [transforms.Resize((h, w))]
    if c == 1:
        steps.append(transforms.Grayscale(1))
    steps.append(transforms.ToTensor())
    if c == 3:
        steps.append(transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
    tf = transforms.Compose(steps)
    try:
        if (path / "train").is_dir() and (path / "val").is_dir():
            train_set = datasets.ImageFolder(str(path / "train"), tf, loader=_read_image)
            val_set = _val_folder(datasets, path / "val", tf, train_set.class_to_idx, spec)
        else:
            full = datasets.ImageFolder(str(path), tf, loader=_read_image)
            n_val = max(1, len(full) // 5)
            g = torch.Generator().manual_seed(0)
            train_set, val_set = torch.utils.data.random_split(full, [len(full) - n_val, n_val], generator=g)
            train_set.classes = full.classes
    except (FileNotFoundError, RuntimeError) as e:
        raise DataError(f"{spec}: {e}") from e
    g = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader
    train = loader(train_set, batch_size=batch_size, shuffle=True, generator=g)
    val = loader(val_set, batch_size=batch_size, shuffle=False)
    return LoadedData(train, val, spec, len(train_set.classes))


def _val_folder(datasets, root: Path, tf, class_to_idx: dict[str, int], spec: str):
    """``root`` as an ``ImageFolder`` labelled with the training set's ``class_to_idx`` (a class may be
    missing from ``val/``; one that ``train/`` does not have is refused)."""
    classes, _ = datasets.folder.find_classes(str(root))
    unknown = [c for c in classes if c not in class_to_idx]
    if unknown:
        raise DataError(f"{spec}: val/ has classes that train/ does not have: {', '.join(unknown)}",
                        hint="give every class in val/ a folder of training images in train/, or remove it from val/")

    class KnownClasses(datasets.ImageFolder):
        def find_classes(self, directory):
            return sorted(class_to_idx, key=class_to_idx.get), dict(class_to_idx)

    return KnownClasses(str(root), tf, loader=_read_image, allow_empty=True)


def _read_image(path: str):
    """torchvision's image loader; a file it cannot read is a :class:`DataError` naming the file."""
    from torchvision.datasets.folder import default_loader

    try:
        return default_loader(path)
    except (OSError, ValueError, SyntaxError) as e:  # PIL: UnidentifiedImageError (an OSError), truncated files
        why = str(e) if path not in str(e) else type(e).__name__  # PIL's message repeats the path
        raise DataError(f"cannot read the image {path}: {why}", hint="remove or replace that file") from None
