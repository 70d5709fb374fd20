"""Is every training loop of this project the official one? Run the official code from your checkouts and see.

    python benchmarks/fidelity.py --moco-repo ~/src/moco --synco-repo ~/src/synco [--json OUT.json]
    python benchmarks/fidelity.py --self-test            # no official code: the machinery on the project alone
    python benchmarks/fidelity.py --self-test --mutations

``--moco-repo``: a checkout of facebookresearch/moco with its training code (commit 132aea9; the repository's
newest commits deleted it). ``--synco-repo``: a checkout of giakoumoglou/synco. Neither is copied into this
project; both are executed as written, with the few text edits listed in the output
(``benchmarks/fidelity_official.py`` says which and why).

Compared, in float64 on the CPU, one line per check (``ok`` or ``FAIL`` with the largest difference):

* the 200-epoch presets against the official launch commands' arguments (exact);
* the lr of ``adjust_learning_rate`` at (epoch, step) points of a 200-epoch run (exact);
* MoCo v2 and SynCo with all six synthetic types, ResNet-18 and ResNet-50, over 4 SGD steps (two at epoch 150):
  loss, both encoders, queue and pointer, gradients, SGD momentum buffers, lr and the weight-decay set
  (``benchmarks/fidelity_pretrain.py``);
* split batch norm on one process against the official shuffle-BN on 2 gloo processes;
* the linear probe, semi-supervised fine-tuning and kNN against ``main_lincls.py``, ``main_semisup.py`` and a
  reference weighted vote (``benchmarks/fidelity_eval.py``).

``--mutations`` then breaks the project's step at run time, one change at a time, and requires every change
to be caught. Exit status: 0 when every check passes (and every mutation is caught), 1 otherwise, 2 for bad
input (one sentence).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

import fidelity_eval
import fidelity_pretrain as pretrain
import torch
from fidelity_official import Check, Checkout, FidelityError, open_checkout

from synco.pretrain.config import load_config

ARCHS = ("resnet18", "resnet50")
_MOCO_HINT = " (the newest commits of facebookresearch/moco deleted the code: git checkout 132aea9)"


def run(moco: Checkout | None, synco: Checkout | None, archs=ARCHS) -> tuple[list[Check], dict]:
    """Every check; ``moco``/``synco`` None with ``self_test`` semantics (the project against itself)."""
    checks: list[Check] = []
    values: dict = {}
    officials = {}
    if moco is not None:
        officials["mocov2"] = pretrain.load_official(moco, "mocov2")
    if synco is not None:
        officials["synco"] = pretrain.load_official(synco, "synco")
    for name, official in officials.items():
        found, values[f"{name} protocol"] = pretrain.protocol_checks(official)
        checks += found
    found, values["lr"] = pretrain.lr_checks(officials.get("mocov2"), load_config("mocov2_200ep"))
    checks += found
    self_test = moco is None and synco is None
    size = "small" if self_test else "full"
    with pretrain.single_process_group(), contextlib.redirect_stdout(io.StringIO()):
        for method in ("mocov2", "synco"):
            if self_test or method in officials:
                for arch in archs:
                    checks += pretrain.step_checks(officials.get(method), method, arch, size=size)
        if self_test or moco is not None:
            checks += pretrain.split_bn_checks(moco, size=size)
        checks += fidelity_eval.self_test_checks() if self_test else fidelity_eval.eval_checks(moco, synco)
    return checks, values


def mutation_report(methods=("mocov2", "synco")) -> list[tuple[str, list[Check]]]:
    """Each mutation of the project's step against the untouched step (ResNet-18, the small size): the checks
    it fails. A mutation counts as caught only if every method in ``methods`` catches it."""
    out = []
    with pretrain.single_process_group(), contextlib.redirect_stdout(io.StringIO()):
        for name, mutation in pretrain.MUTATIONS.items():
            per_method = [[c for c in pretrain.step_checks(None, method, "resnet18", mutation, size="small")
                           if not c.ok] for method in methods]
            failed = [c for found in per_method for c in found] if all(per_method) else []
            out.append((name, failed))
        for name, mutation in fidelity_eval.EVAL_MUTATIONS.items():
            with mutation():
                failed = [c for c in fidelity_eval.self_test_checks() if not c.ok]
            out.append((name, failed))
    return out


def _checkouts(args) -> tuple[Checkout | None, Checkout | None]:
    moco = synco = None
    if args.moco_repo:
        moco = open_checkout(args.moco_repo, "facebookresearch/moco",
                             (*pretrain.MOCO_REQUIRED, *fidelity_eval.MOCO_REQUIRED), _MOCO_HINT)
    if args.synco_repo:
        synco = open_checkout(args.synco_repo, "giakoumoglou/synco",
                              (*pretrain.SYNCO_REQUIRED, *fidelity_eval.SYNCO_REQUIRED))
    return moco, synco


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moco-repo", help="checkout of facebookresearch/moco (132aea9)")
    parser.add_argument("--synco-repo", help="checkout of giakoumoglou/synco")
    parser.add_argument("--self-test", action="store_true", help="the project against itself (no official code)")
    parser.add_argument("--mutations", action="store_true", help="also require each mutation to be caught")
    parser.add_argument("--archs", default=",".join(ARCHS), help="comma-separated: resnet18,resnet50")
    parser.add_argument("--json", type=Path, help="also write every check and compared value here")
    args = parser.parse_args(argv)
    archs = tuple(a for a in args.archs.split(",") if a)
    if not args.self_test and not (args.moco_repo or args.synco_repo):
        print("fidelity: give --moco-repo and/or --synco-repo (your checkouts), or --self-test.", file=sys.stderr)
        return 2
    if args.self_test and (args.moco_repo or args.synco_repo):
        print("fidelity: --self-test compares the project with itself; drop --moco-repo/--synco-repo.",
              file=sys.stderr)
        return 2
    bad = [a for a in archs if a not in ARCHS]
    if bad or not archs:
        print(f"fidelity: --archs takes {', '.join(ARCHS)}; got {args.archs!r}.", file=sys.stderr)
        return 2
    start = time.time()
    try:
        moco, synco = _checkouts(args)
        for checkout in (moco, synco):
            if checkout is not None:
                commit = checkout.commit or "unknown: not a git work tree"
                print(f"# {checkout.repo} at {checkout.root} (commit {commit})")
        checks, values = run(moco, synco, archs)
    except FidelityError as exc:
        print(f"fidelity: {exc}", file=sys.stderr)
        return 2
    for checkout in (moco, synco):
        for edit in checkout.edits if checkout else ():
            print(f"# edit {edit.describe()}")
    print(f"# torch {torch.__version__}, float64, CPU")
    for check in checks:
        print(check.line())
    failed = [c for c in checks if not c.ok]
    print(f"# {len(checks) - len(failed)} of {len(checks)} checks equal, {time.time() - start:.0f} s")
    missed = []
    if args.mutations:
        for name, caught in mutation_report():
            largest = max((c.max_diff for c in caught), default=0.0)
            print(f"mutation {name!r}: {'caught by ' + str(len(caught)) + ' checks' if caught else 'NOT CAUGHT'}"
                  f"{f' (largest difference {largest:.3e})' if caught else ''}")
            if not caught:
                missed.append(name)
    if args.json:
        args.json.write_text(json.dumps({
            "commits": {c.repo: c.commit for c in (moco, synco) if c},
            "edits": [e.describe() for c in (moco, synco) if c for e in c.edits],
            "checks": [{"loop": c.loop, "name": c.name, "max_diff": c.max_diff, "tol": c.tol, "ok": c.ok}
                       for c in checks],
            "values": values, "torch": torch.__version__}, indent=1, default=str))
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())
