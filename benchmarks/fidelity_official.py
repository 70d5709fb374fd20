"""Running the official training code from the user's own checkout, and comparing it with this project's.

The fidelity script (``benchmarks/fidelity.py``) holds this project's loops to the code the papers' numbers
came from: facebookresearch/moco and giakoumoglou/synco. That code is never copied into the project. It is
read from the paths the user gives, at run time, and executed as written, with two kinds of intervention,
both reported:

* **text edits** (:class:`Edit`): only where the code cannot run on a CPU as written (its ``.cuda()`` calls)
  or does not run at all (a missing import). Each edit names the exact text it replaces and how many times
  that text must occur, so an edit that no longer matches the user's checkout fails loudly instead of
  silently editing something else;
* **import redirects**: ``main_moco.py`` at 132aea9 imports ``deeplearning.cross_image_ssl.moco.builder``
  (Meta's internal path) and SynCo's ``main_synco.py`` imports ``synco.builder``, a name this project's own
  package holds. The module's ``import`` statements are resolved to the checkout's files instead; the text
  is untouched.

A :class:`Check` is one compared quantity with its largest absolute difference and the tolerance it is held
to; the script prints one line per check and exits non-zero when any fails.
"""

from __future__ import annotations

import builtins
import math
import subprocess
import sys
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

#: float64 rounding, amplified by a random-init network's conditioning, as measured (2026-12-05, against
#: moco @132aea9): after 4 SGD steps of MoCo v2, ResNet-18 agrees to 3e-14 (relative to max(1, |value|));
#: ResNet-50 at 32 px, batch 16 to 1.0e-10, at 32 px, batch 32 to 2.2e-11 and at 64 px, batch 16 to 7.9e-12:
#: its 1x1 layer-4 batch norm over few images amplifies rounding, and the better conditioned the smaller it
#: gets. A real change to a loop (the mutations of ``fidelity_pretrain.py``) moves the same quantities by
#: 1e-7 or more.
TOLERANCE = 1e-9


class FidelityError(Exception):
    """A problem with the user's input (a path, a checkout), said in one sentence."""


@dataclass(frozen=True)
class Edit:
    """A text edit to an official file: ``old`` must occur exactly ``count`` times; each becomes ``new``."""

    file: str
    old: str
    new: str
    count: int
    why: str

    def describe(self) -> str:
        return f"{self.file}: {self.old!r} -> {self.new!r} ({self.count}x; {self.why})"


@dataclass
class Check:
    """One compared quantity: ``max_diff`` is the largest absolute difference between the two sides."""

    loop: str
    name: str
    max_diff: float
    tol: float = TOLERANCE
    detail: str = ""

    @property
    def ok(self) -> bool:
        return math.isfinite(self.max_diff) and self.max_diff <= self.tol

    def line(self) -> str:
        verdict = "ok  " if self.ok else "FAIL"
        extra = f"  ({self.detail})" if self.detail else ""
        return f"{verdict} {self.loop:<10} {self.name:<40} max |diff| {self.max_diff:.3e}  (tol {self.tol:.0e}){extra}"


@dataclass
class Checkout:
    """A user's checkout of an official repository: its root, commit (when a git work tree) and the edits made."""

    repo: str
    root: Path
    commit: str | None
    edits: list[Edit] = field(default_factory=list)


def open_checkout(path: str | Path, repo: str, required: Iterable[str], hint: str = "") -> Checkout:
    """``path`` as a checkout of ``repo`` holding every file in ``required``, or one sentence saying why not."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FidelityError(f"{root} is not a folder; pass the path of your checkout of {repo}.")
    missing = [name for name in required if not (root / name).is_file()]
    if missing:
        raise FidelityError(f"{root} is not a checkout of {repo} with its training code: {', '.join(missing)} "
                            f"{'is' if len(missing) == 1 else 'are'} missing{hint}.")
    return Checkout(repo, root, _git_commit(root))


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and (root / ".git").exists() else None


def load_module(checkout: Checkout, relpath: str, name: str, edits: Iterable[Edit] = (),
                imports: Mapping[str, types.ModuleType] | None = None) -> types.ModuleType:
    """Execute ``checkout.root / relpath`` as a fresh module called ``name``.

    ``edits`` are applied to its text first (each must match exactly its ``count`` times, and is recorded on
    ``checkout``). ``imports`` maps a dotted name the file imports (``synco.builder``) to the module that
    ``import`` statement should bind; every other import is Python's own.
    """
    path = checkout.root / relpath
    source = path.read_text()
    for edit in edits:
        found = source.count(edit.old)
        if found != edit.count:
            raise FidelityError(f"{path} is not the file this script knows: {edit.old!r} occurs {found} times, "
                                f"{edit.count} expected; check out the commit the script names.")
        source = source.replace(edit.old, edit.new)
        checkout.edits.append(edit)
    module = types.ModuleType(name)
    module.__file__ = str(path)
    module.__source__ = source  # as executed (after the edits): what main_worker_expression reads
    if imports:
        module.__dict__["__builtins__"] = _redirecting_builtins(imports)
    sys.modules[name] = module
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - the user's checkout, as written
    except Exception as exc:  # noqa: BLE001 - the user's file failed to import: one sentence, not its traceback
        raise FidelityError(f"{path} does not import ({type(exc).__name__}: {exc}); check out the commit the "
                            "script names.") from None
    return module


def package(name: str, **members: types.ModuleType) -> types.ModuleType:
    """A module object ``name`` whose attributes are ``members`` (what ``import name.member`` binds)."""
    module = types.ModuleType(name)
    module.__dict__.update(members)
    return module


def _redirecting_builtins(imports: Mapping[str, types.ModuleType]) -> dict:
    """``builtins`` whose ``__import__`` answers the names in ``imports`` (and their top packages)."""
    tops: dict[str, types.ModuleType] = {}
    for dotted, module in imports.items():
        top, _, rest = dotted.partition(".")
        if not rest:
            tops[top] = module
            continue
        holder = tops.setdefault(top, types.ModuleType(top))
        parts = rest.split(".")
        for part in parts[:-1]:
            holder = holder.__dict__.setdefault(part, types.ModuleType(part))
        setattr(holder, parts[-1], module)
    real_import = builtins.__import__

    def redirected(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.partition(".")[0] in tops:
            top = tops[name.partition(".")[0]]
            if not fromlist:
                return top
            target = top
            for part in name.split(".")[1:]:
                target = getattr(target, part)
            return target
        return real_import(name, globals, locals, fromlist, level)

    namespace = dict(builtins.__dict__)
    namespace["__import__"] = redirected
    return namespace


def max_scaled_diff(ours, theirs) -> float:
    """:func:`max_abs_diff` with each tensor's difference divided by the larger of 1 and its largest value.

    A random-init ResNet-50's deep BN statistics and gradients reach 1e2-1e4, where float64 rounding is
    1e-13 absolute; scaled, every quantity is held to the same relative precision.
    """
    return max_abs_diff(ours, theirs, scaled=True)


def max_abs_diff(ours, theirs, scaled: bool = False) -> float:
    """Largest absolute difference between two tensors, or two equal-keyed mappings/sequences of tensors.

    Differing shapes or keys are an infinite difference (the check fails and says so).
    """
    if isinstance(ours, Mapping):
        if set(ours) != set(theirs):
            return math.inf
        return max((max_abs_diff(ours[k], theirs[k], scaled) for k in ours), default=0.0)
    if isinstance(ours, (list, tuple)):
        if len(ours) != len(theirs):
            return math.inf
        return max((max_abs_diff(a, b, scaled) for a, b in zip(ours, theirs)), default=0.0)
    if isinstance(ours, (int, float)):
        return abs(float(ours) - float(theirs))
    a, b = torch.as_tensor(ours), torch.as_tensor(theirs)
    if a.shape != b.shape:
        return math.inf
    if a.numel() == 0:
        return 0.0
    diff = (a.double() - b.double()).abs().max().item()
    return diff / max(1.0, b.double().abs().max().item()) if scaled else diff
