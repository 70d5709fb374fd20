"""Read a checkpoint file without running code from it, unless the user says to.

Safety vs compatibility, the choice made here:

* PyTorch files are read with ``torch.load(weights_only=True)``, which only
  rebuilds tensors and plain containers. A few harmless types that real
  checkpoints carry are allow-listed: ``argparse.Namespace`` (DINO and
  timm store their args) and numpy arrays/scalars/dtypes.
* Detectron2/Caffe2 ``.pkl`` files are plain pickles (``encoding="latin1"``
  for old Python 2 pickles) read by an unpickler that resolves only numpy
  array reconstruction, ``OrderedDict`` and ``_codecs.encode``.
* A reference to a function or class of the training script itself
  (``__main__.X``, e.g. VICReg's ``exclude_bias_and_norm`` in its LARS
  ``param_groups``) can be resolved by no loader, trusted or not: the script
  is not here, and this process's own ``__main__`` is a different program.
  So it is read as an inert placeholder (:class:`MainScriptObject`), never
  imported or called, by the safe reader and by ``--trust-pickle`` alike.
  Such references sit in optimizer metadata; were one to stand for a
  backbone tensor, that tensor would be missing and the coverage check
  would refuse.
* There is no silent fallback to full unpickling: a file that needs more
  (e.g. a Lightning checkpoint whose hyper-parameters are an ``AttributeDict``)
  fails with the offending global named, and ``trust_pickle=True``
  (``--trust-pickle``) re-reads it with ``weights_only=False`` / plain pickle.
  Unpickling can run arbitrary code, so that must be the user's decision
  about a file whose origin they know.
* A file that is neither a zip archive (what ``torch.save`` writes) nor a
  pickle (old ``torch.save`` files, detectron2 ``.pkl``) and fails to
  load is called that, in one sentence, rather than by whatever the
  unpickler tripped on (a text file read as a pickle says ``KeyError: 101``).
"""

from __future__ import annotations

import argparse
import pickle
import re
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from synco.common.digest import sha256_of
from synco.common.errors import UserError

_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),
}
_BLOCKED = re.compile(r"Weights only load failed|GLOBAL |is not allowed")
_GLOBAL_NAME = re.compile(r"GLOBAL ([\w.]+)|global '([\w.]+)'|but got <class '([\w.]+)'>")
_TRUST_HINT = (
    "unpickling it could run arbitrary code, so this is off by default; "
    "if you trust where the file came from, re-run with --trust-pickle"
)


@dataclass
class LoadedCheckpoint:
    """A checkpoint's contents with the hash of the exact bytes read."""

    obj: Any
    sha256: str
    reader: str


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler for detectron2 .pkl files: numpy arrays in dicts, nothing executable."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PICKLE_ALLOWED or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")


def _torch_safe_globals() -> list[Any]:
    allowed: list[Any] = [argparse.Namespace, np.ndarray, np.dtype]
    multiarray = getattr(np, "_core", None) or np.core
    allowed += [multiarray.multiarray._reconstruct, multiarray.multiarray.scalar]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25: one class per dtype (UInt32DType, ...)
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith("DType") and name != "ObjectDType"]
    return allowed


class MainScriptObject:
    """Stands for an object of the training script's ``__main__`` (see the module docstring); inert."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _TrustedUnpickler(pickle.Unpickler):
    """Full unpickling (``--trust-pickle``), except that ``__main__`` names become :class:`MainScriptObject`.

    Why not resolve them: ``__main__`` here is ``synco``, not the training
    script that saved the file, so a name found there would be the wrong
    object and a missing one would fail the whole read.
    """

    def find_class(self, module: str, name: str) -> Any:
        if module == "__main__":
            return MainScriptObject
        return super().find_class(module, name)


def _trusted_load(handle: BinaryIO, **kwargs: Any) -> Any:
    return _TrustedUnpickler(handle, **kwargs).load()


#: What ``torch.load(pickle_module=...)`` needs of a pickle module: its name, ``Unpickler`` and ``load``.
_TRUSTED_PICKLE = types.SimpleNamespace(__name__="transfer.convert.reading.trusted_pickle",
                                        Unpickler=_TrustedUnpickler, load=_trusted_load)


def _load_torch(path: Path, trust_pickle: bool) -> Any:
    if trust_pickle:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_TRUSTED_PICKLE)
    serialization = torch.serialization
    if not hasattr(serialization, "safe_globals"):  # torch 2.4: only the process-wide allow-list exists
        serialization.add_safe_globals(_torch_safe_globals())
        return torch.load(path, map_location="cpu", weights_only=True)
    placeholders: list[Any] = []
    while True:
        try:
            with serialization.safe_globals(_torch_safe_globals() + placeholders):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            name = _blocked_global(exc)
            if not name.startswith("__main__.") or len(placeholders) >= 32:
                raise
            placeholders.append((MainScriptObject, name))


def _load_pickle(path: Path, trust_pickle: bool) -> Any:
    with path.open("rb") as handle:
        if trust_pickle:
            return _trusted_load(handle, encoding="latin1")
        return _NumpyOnlyUnpickler(handle, encoding="latin1").load()


def _blocked_global(exc: Exception) -> str:
    match = _GLOBAL_NAME.search(str(exc))
    return next(group for group in match.groups() if group) if match else "objects other than tensors"


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


_ZIP = b"PK\x03\x04"
# How a pickle can open: PROTO (every pickle of protocol 2 or later, hence every old torch.save file), or, at
# protocols 0 and 1 (Python 2 era .pkl files), MARK, EMPTY_DICT, EMPTY_LIST or GLOBAL.
_PICKLE_OPENINGS = (b"\x80", b"(", b"}", b"]", b"c")


def _not_a_checkpoint(path: Path) -> str | None:
    """Why ``path`` (which failed to load) is no checkpoint at all, judged by its first bytes; None if it may be one.

    Why only after a failure, and only by the first byte: a pickle of
    protocol 0 is itself ASCII text, so looking like text proves nothing;
    opening with no opcode a pickle can open with does.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(32)
    except OSError:
        return None
    if head.startswith((_ZIP, *_PICKLE_OPENINGS)):
        return None
    text = head.decode("utf-8", errors="replace").strip()
    printable = text and all(char.isprintable() or char.isspace() for char in text) and "\ufffd" not in text
    shape = f"it begins like a text file ({text[:24]!r})" if printable else f"it begins with bytes {head[:8].hex(' ')}"
    return (f"{path} is not a checkpoint torch can read: it is neither a zip archive (what torch.save writes) "
            f"nor a pickle (old torch.save files, detectron2 .pkl), and {shape}")


def load_checkpoint(path: str | Path, trust_pickle: bool = False) -> LoadedCheckpoint:
    """Load ``path`` on the CPU (see the module docstring for what is and is not unpickled)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a checkpoint file; name the file inside it "
                        "(e.g. checkpoint_0199.pth.tar)")
    if not path.is_file():
        raise UserError(f"input checkpoint not found: {path}")
    try:
        if path.stat().st_size == 0:
            raise UserError(f"{path} is empty (0 bytes), not a checkpoint")
        sha = sha256_of(path)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    as_pickle = path.suffix == ".pkl" and not zipfile.is_zipfile(path)
    reader = "pickle" if as_pickle else "torch.load"
    try:
        obj = _load_pickle(path, trust_pickle) if as_pickle else _load_torch(path, trust_pickle)
    except Exception as exc:  # noqa: BLE001 - why broad: unpicklers fed a text or corrupt file raise anything
        # (IndexError, KeyError, UnicodeDecodeError, struct.error...); all mean "not a checkpoint"
        raise _read_error(path, reader, trust_pickle, exc) from (exc if isinstance(exc, pickle.UnpicklingError)
                                                                  else None)
    return LoadedCheckpoint(obj, sha, reader)


def _read_error(path: Path, reader: str, trust_pickle: bool, exc: Exception) -> UserError:
    """The one sentence that names why ``path`` could not be read."""
    not_a_checkpoint = _not_a_checkpoint(path)
    if not_a_checkpoint is not None:
        return UserError(not_a_checkpoint)
    if isinstance(exc, pickle.UnpicklingError):
        if not trust_pickle and _BLOCKED.search(str(exc)):
            return UserError(f"{path} stores {_blocked_global(exc)}, not just weights; {_TRUST_HINT}")
        return UserError(f"cannot read {path} as a checkpoint ({reader}): {_first_line(exc)}")
    return UserError(f"cannot read {path} as a checkpoint ({reader}): {type(exc).__name__}: {_first_line(exc)}")
