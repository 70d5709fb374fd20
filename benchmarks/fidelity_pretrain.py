"""The pretraining loops held to the official code: MoCo v2 (facebookresearch/moco ``main_moco.py``) and SynCo
(giakoumoglou/synco ``main_synco.py``), step for step in float64.

Both sides get the same initial weights and buffers, the same image batches, the same queue and the same
shuffle permutation (the global CPU generator, which the official ``_batch_shuffle_ddp`` draws from, is set
to the state of the project's step generator). The official model runs as ``main_worker`` builds it (the
builder call and the optimizer are read from ``main_worker``'s own text and evaluated as written), wrapped in
``DistributedDataParallel`` over a real single-process gloo group, so its ``concat_all_gather`` and
``_batch_shuffle_ddp`` run unchanged; its ``adjust_learning_rate`` and ``train`` are called per step. For
SynCo the synthetic draws are fixed on both sides: the project's draws (queue rows and coefficients) are
fed to the official code through ``torch.randint``/``rand``/``randn_like`` while its forward runs, in the
order its builder asks for them, each request's shape checked.

``self_test=True`` replaces the official side by a second, untouched instance of the project's own step: it
exercises every comparison without the official checkouts (CI cannot fetch them), and a mutation applied to
the project side must still make it fail.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import shlex
import tempfile
import types
from argparse import Namespace
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torchvision
import torchvision.transforms as T
from fidelity_official import (
    Check,
    Checkout,
    Edit,
    FidelityError,
    load_module,
    max_abs_diff,
    max_scaled_diff,
    open_checkout,
)

import synco.pretrain.contrastive as contrastive
from synco.pretrain import train
from synco.pretrain.config import PretrainConfig, config_from_dict, load_config
from synco.pretrain.data import aug_plus
from synco.pretrain.model import MomentumContrast, build_encoder

MOCO_REQUIRED = ("moco/builder.py", "moco/loader.py", "main_moco.py")
SYNCO_REQUIRED = ("synco/builder.py", "synco/loader.py", "main_synco.py", "scripts/pretrain_synco_r50_200ep.sh")

#: The only text edits: the official code moves tensors to a GPU that a CPU check does not have.
_RANDPERM = "idx_shuffle = torch.randperm(batch_size_all).cuda()"
_LABELS = "labels = torch.zeros(logits.shape[0], dtype=torch.long).cuda()"
_CRITERION = "criterion = nn.CrossEntropyLoss().cuda(args.gpu)"


#: main_moco.py's accuracy() (a printed meter, not training) views a non-contiguous slice, which torch >= 1.7
#: refuses; main_synco.py already has the fix.
_ACCURACY = "correct_k = correct[:k].view(-1)"


def _cpu_edits(builder: str, main: str) -> tuple[list[Edit], list[Edit]]:
    why = "no GPU: the tensor stays on the CPU"
    main_edits = [Edit(main, _CRITERION, _CRITERION.removesuffix(".cuda(args.gpu)"), 1, why)]
    if main == "main_moco.py":
        main_edits.append(Edit(main, _ACCURACY, _ACCURACY.replace(".view(", ".reshape("), 1,
                               "its top-k meter fails on current torch; training is untouched"))
    return ([Edit(builder, _RANDPERM, _RANDPERM.removesuffix(".cuda()"), 1, why),
             Edit(builder, _LABELS, _LABELS.removesuffix(".cuda()"), 1, why)], main_edits)


#: main_moco.py's MoCo v2 command (facebookresearch/moco README.md, "MoCo v2" row of its models table).
MOCO_V2_FLAGS = ["-a", "resnet50", "--lr", "0.03", "--batch-size", "256", "--mlp", "--moco-t", "0.2",
                 "--aug-plus", "--cos", "IMAGENET"]
#: Options of the shipped launch scripts that say where, not what (paths, ports, processes).
_WHERE = {"--resume": 1, "--save-dir": 1, "--dist-url": 1, "--multiprocessing-distributed": 0,
          "--world-size": 1, "--rank": 1}

#: The steps compared: (epoch, step) of a 200-epoch run with this many steps an epoch; epoch 150 comes after
#: SynCo's 10 warm-up epochs, so two steps there use all six synthetic types.
STEPS = ((0, 0), (0, 1), (150, 0), (150, 1))
#: The self-test's and the mutations' steps: still three, one of them at a later epoch.
SMALL_STEPS = ((0, 0), (150, 0), (150, 1))
STEPS_PER_EPOCH = 5004
#: (epoch, step) points of the 200-epoch lr schedule compared with adjust_learning_rate.
LR_POINTS = tuple((e, s) for e in (0, 1, 50, 100, 101, 150, 198, 199) for s in (0, STEPS_PER_EPOCH - 1))


@dataclass
class Official:
    """The official code of one method, loaded from a checkout."""

    name: str  # "mocov2" or "synco"
    builder: types.ModuleType
    main: types.ModuleType
    args: Namespace  # its parser's values for the published command


def load_official(checkout: Checkout, method: str) -> Official:
    """Execute the official builder, loader and main script of ``method`` from ``checkout``."""
    package = "moco" if method == "mocov2" else "synco"
    main_file = "main_moco.py" if method == "mocov2" else "main_synco.py"
    builder_edits, main_edits = _cpu_edits(f"{package}/builder.py", main_file)
    prefix = f"official_{package}"
    builder = load_module(checkout, f"{package}/builder.py", f"{prefix}.builder", builder_edits)
    loader = load_module(checkout, f"{package}/loader.py", f"{prefix}.loader")
    # main_moco.py at 132aea9 imports Meta's internal path; earlier commits and main_synco.py the package
    imports = {f"{package}.builder": builder, f"{package}.loader": loader,
               "deeplearning.cross_image_ssl.moco.builder": builder,
               "deeplearning.cross_image_ssl.moco.loader": loader}
    main = load_module(checkout, main_file, f"{prefix}.main", main_edits, imports)
    script = checkout.root / "scripts/pretrain_synco_r50_200ep.sh"
    flags = MOCO_V2_FLAGS if method == "mocov2" else _script_flags(script)
    args = main.parser.parse_args(flags)
    return Official(method, builder, main, args)


def _script_flags(script: Path) -> list[str]:
    """The arguments of the ``python main_synco.py ...`` command in a launch script, less where it runs."""
    words = shlex.split(script.read_text().replace("\\\n", " "), comments=True)
    try:
        words = words[words.index("main_synco.py") + 1:]
    except ValueError:
        raise FidelityError(f"{script} has no 'python main_synco.py' command; is it SynCo's launch script?") from None
    flags, i = [], 0
    while i < len(words):
        skip = _WHERE.get(words[i])
        if skip is None:
            flags.append(words[i])
            i += 1
        else:
            i += 1 + skip
    return flags


def main_worker_expression(official: Official, target: str) -> str:
    """The text of the right-hand side of ``target = ...`` in the official ``main_worker`` (first one)."""
    source = official.main.__source__
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "main_worker":
            for stmt in ast.walk(node):
                if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == target
                                                        for t in stmt.targets):
                    return ast.get_source_segment(source, stmt.value)
    raise FidelityError(f"{official.main.__file__} has no '{target} = ...' in main_worker; check out the commit "
                        "the script names.")


def evaluate(official: Official, expression: str, **names) -> object:
    """``expression`` (official text) evaluated in the official main module's namespace plus ``names``."""
    return eval(expression, {**official.main.__dict__, **names})  # noqa: S307 - the user's checkout, as written


# -- protocol values ------------------------------------------------------------------------------------------

_PROTOCOL = {  # project setting -> official argument
    "lr": "lr", "batch_size": "batch_size", "epochs": "epochs", "sgd_momentum": "momentum",
    "weight_decay": "weight_decay", "dim": "moco_dim", "queue_size": "moco_k", "momentum": "moco_m",
    "temperature": "moco_t", "arch": "arch",
}
_SYNTHESIS = {"n_hard": "n_hard", "n_interpolated": "n1", "n_extrapolated": "n2", "n_mixed": "n3",
              "n_noise": "n4", "n_perturbed": "n5", "n_adversarial": "n6", "sigma": "sigma", "delta": "delta",
              "eta": "eta", "warmup_epochs": "warmup_epochs"}


def protocol_checks(official: Official) -> tuple[list[Check], dict]:
    """The project's 200-epoch preset against the official command's arguments (equal, not close)."""
    cfg = load_config(f"{official.name}_200ep")
    ours = {key: getattr(cfg, key) for key in _PROTOCOL}
    theirs = {key: getattr(official.args, arg) for key, arg in _PROTOCOL.items()}
    ours["cosine, per epoch"] = cfg.lr_schedule == "cosine"
    theirs["cosine, per epoch"] = bool(official.args.cos)
    head = build_encoder("resnet18", cfg.dim).fc
    ours["MLP head"] = isinstance(head, nn.Sequential) and [type(m).__name__ for m in head] == [
        "Linear", "ReLU", "Linear"]
    theirs["MLP head"] = bool(official.args.mlp)
    ours["aug+"] = [_describe(t) for t in aug_plus(224, cfg.crop_min).transforms]
    theirs["aug+"] = _official_augmentation(official)
    if official.name == "synco":
        synth = cfg.synthesis
        ours.update({key: getattr(synth, key) for key in _SYNTHESIS})
        theirs.update({key: getattr(official.args, arg) for key, arg in _SYNTHESIS.items()})
        ours["alpha, beta, gamma ranges"] = (synth.alpha_range, synth.beta_range, synth.gamma_range)
        theirs["alpha, beta, gamma ranges"] = _synco_ranges(official)
    checks = [Check(official.name, f"protocol {key}", 0.0 if ours[key] == theirs[key] else float("inf"), 0.0,
                    _shown(ours[key], theirs[key])) for key in ours]
    return checks, {key: theirs[key] for key in theirs}


def _shown(ours, theirs) -> str:
    """Both values, or, for a long one (the augmentation lists), its length; --json keeps them whole."""
    text = f"{ours!r} vs {theirs!r}"
    verdict = "equal" if ours == theirs else "differ"
    return text if len(text) <= 100 else f"{len(ours)} vs {len(theirs)} items, {verdict}"


def _official_augmentation(official: Official) -> list[tuple]:
    """The list of transforms ``main_worker`` builds under ``if args.aug_plus:``, described."""
    if not official.args.aug_plus:
        return []
    source = official.main.__source__
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "args.aug_plus":
            listed = next((stmt.value for stmt in node.body if isinstance(stmt, ast.Assign)
                           and isinstance(stmt.value, ast.List)), None)
            if listed is not None:
                normalize = evaluate(official, main_worker_expression(official, "normalize"))
                transforms = evaluate(official, ast.get_source_segment(source, listed), normalize=normalize)
                return [_describe(t) for t in transforms]
    raise FidelityError(f"{official.main.__file__} builds no list of transforms under 'if args.aug_plus:'; check "
                        "out the commit the script names.")


def _describe(transform) -> tuple:
    """What a torchvision transform does, comparable across the two code bases. The blurs are two
    classes of the same thing (PIL's GaussianBlur with sigma ~ U(lo, hi)): compared by their range."""
    name = type(transform).__name__
    if isinstance(transform, T.RandomApply):
        return name, transform.p, [_describe(t) for t in transform.transforms]
    if isinstance(transform, T.RandomResizedCrop):
        return name, tuple(transform.size), tuple(transform.scale), tuple(transform.ratio), transform.interpolation
    if isinstance(transform, T.ColorJitter):
        return name, transform.brightness, transform.contrast, transform.saturation, transform.hue
    if isinstance(transform, (T.RandomGrayscale, T.RandomHorizontalFlip)):
        return name, transform.p
    if isinstance(transform, T.Normalize):
        return name, tuple(transform.mean), tuple(transform.std)
    if hasattr(transform, "sigma"):
        return "GaussianBlur", tuple(float(s) for s in transform.sigma)
    return (name,)


def _synco_ranges(official: Official) -> tuple:
    """U(lo, hi) of the official interpolation, extrapolation and mixing coefficients (its hard_* fields)."""
    built = official.builder.SynCo(torchvision.models.resnet18, dim=4, K=4, n_hard=1, n1=1, n2=1, n3=1, n4=1, n5=1,
                                   n6=1)
    return ((0.0, built.hard_alpha), (1.0, built.hard_beta), (0.0, float(built.hard_gamma)))


# -- the lr schedule --------------------------------------------------------------------------------------------

def lr_checks(official: Official | None, cfg: PretrainConfig) -> tuple[list[Check], dict]:
    """``cfg.lr_at`` against ``adjust_learning_rate`` at :data:`LR_POINTS` of a 200-epoch run (bit for bit)."""
    checks, values = [], {}
    holder = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    for epoch, step in LR_POINTS:
        ours = cfg.lr_at(epoch, step, STEPS_PER_EPOCH)
        if official is None:
            theirs = config_from_dict(cfg.to_dict()).lr_at(epoch)
        else:
            official.main.adjust_learning_rate(holder, epoch, official.args)
            theirs = holder.param_groups[0]["lr"]
        values[f"{epoch}:{step}"] = theirs
        checks.append(Check("lr", f"epoch {epoch:>3} step {step:>4}", abs(ours - theirs), 0.0, f"{theirs:.12g}"))
    return checks, values


# -- the training step -----------------------------------------------------------------------------------------

#: (batch, image size, queue) of the comparison: "full" against the official code, "small" for the self-test
#: and the mutations (CI), where the machinery matters more than the size.
SIZES = {"full": (16, 32, 2048), "small": (8, 16, 1024)}


def project_config(method: str, arch: str, bn_splits: int = 1, size: str = "full") -> PretrainConfig:
    """The 200-epoch preset at a size a CPU compares in seconds; every other protocol value kept."""
    batch, pixels, queue = SIZES[size]
    return load_config(f"{method}_200ep", [f"arch={arch}", f"batch_size={batch}", f"lr={0.03 * 256 / batch}",
                                           f"queue_size={queue}", f"bn_splits={bn_splits}", f"image_size={pixels}"])


@dataclass
class _Side:
    """One side of the comparison after each step."""

    losses: list[float]
    states: list[dict]


def _snapshot(encoder_q: nn.Module, encoder_k: nn.Module, queue: torch.Tensor, ptr: int,
              optimizer: torch.optim.Optimizer, names: dict[int, str]) -> dict:
    grads = {name: p.grad.detach().clone() for name, p in encoder_q.named_parameters() if p.grad is not None}
    buffers = {names[id(p)]: state["momentum_buffer"].clone() for group in optimizer.param_groups
               for p in group["params"] if (state := optimizer.state.get(p)) and "momentum_buffer" in state}
    decayed = {names[id(p)]: group["weight_decay"] for group in optimizer.param_groups for p in group["params"]
               if p.requires_grad and id(p) in names}
    return {"encoder_q": {k: v.clone() for k, v in encoder_q.state_dict().items()},
            "encoder_k": {k: v.clone() for k, v in encoder_k.state_dict().items()},
            "queue": queue.clone(), "queue pointer": torch.tensor(ptr), "gradients": grads,
            "SGD momentum buffers": buffers, "lr": [g["lr"] for g in optimizer.param_groups][0],
            "weight-decay set": decayed}


def _batches(cfg: PretrainConfig, count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    shape = (cfg.batch_size, 3, cfg.image_size, cfg.image_size)
    return [(torch.randn(shape, generator=g), torch.randn(shape, generator=g)) for _ in range(count)]


Mutation = Callable[[MomentumContrast, torch.optim.Optimizer, PretrainConfig], None]


def _project_side(cfg: PretrainConfig, init: dict, batches, mutation: Mutation | None,
                  draws: list | None, steps=STEPS) -> tuple[_Side, list[torch.Tensor]]:
    """The project's own loop pieces (build_model, lr_at, train_step), step by step."""
    cfg = dataclasses.replace(cfg)  # a mutation changes this side's settings only
    model, optimizer, _ = train.build_model(cfg, 1, torch.device("cpu"))
    model.load_state_dict(init)
    if mutation is not None:
        mutation(model, optimizer, cfg)
    names = {id(p): name for name, p in model.encoder_q.named_parameters()}
    side, generator_states = _Side([], []), []
    for (epoch, step), (im_q, im_k) in zip(steps, batches):
        generator_states.append(model.generator.get_state())
        with _capture_draws(draws):
            loss, _, _ = train.train_step(model, optimizer, im_q, im_k, epoch,
                                          cfg.lr_at(epoch, step, STEPS_PER_EPOCH))
        side.losses.append(loss.item())
        side.states.append(_snapshot(model.encoder_q, model.encoder_k, model.queue.keys, int(model.queue.ptr),
                                     optimizer, names))
    return side, generator_states


@contextlib.contextmanager
def _capture_draws(draws: list | None) -> Iterator[None]:
    """Record the synthesis draws of the project's step (the Synthesis it returns), changing nothing."""
    if draws is None:
        yield
        return
    real = contrastive.synthetic_logits

    def recording(*a, **kw):
        logits, syn = real(*a, **kw)
        draws.append(syn.draws)
        return logits, syn

    contrastive.synthetic_logits = recording
    try:
        yield
    finally:
        contrastive.synthetic_logits = real


class _RecordingLoss(nn.Module):
    """The official criterion, remembering each loss (``train()`` keeps it in a local meter)."""

    def __init__(self, criterion: nn.Module):
        super().__init__()
        self.criterion, self.values = criterion, []

    def forward(self, output, target):
        loss = self.criterion(output, target)
        self.values.append(loss.item())
        return loss


def _official_side(official: Official, cfg: PretrainConfig, init: dict, batches,
                   generator_states: list[torch.Tensor], draws: list | None, steps=STEPS) -> _Side:
    """The official main_worker's model and optimizer, its adjust_learning_rate and train(), step by step."""
    args = Namespace(**vars(official.args))
    args.arch, args.batch_size, args.lr, args.moco_k = cfg.arch, cfg.batch_size, cfg.scaled_lr, cfg.queue_size
    args.gpu, args.print_freq = None, 10 ** 9
    model = evaluate(official, main_worker_expression(official, "model"), args=args)
    _load_official(model, init, official.name)
    model = nn.parallel.DistributedDataParallel(model)  # main_worker's CPU/all-GPU branch, less .cuda()
    optimizer = evaluate(official, main_worker_expression(official, "optimizer"), args=args, model=model)
    criterion = _RecordingLoss(evaluate(official, main_worker_expression(official, "criterion"), args=args))
    inner = model.module
    names = {id(p): name.removeprefix("encoder_q.") for name, p in inner.named_parameters()}
    side = _Side(criterion.values, [])
    for i, ((epoch, _step), (im_q, im_k)) in enumerate(zip(steps, batches)):
        official.main.adjust_learning_rate(optimizer, epoch, args)
        torch.set_rng_state(generator_states[i])  # the shuffle permutation the project drew
        replay = _Replay(draws[i] if draws and i < len(draws) else None, cfg) if official.name == "synco" else None
        with replay if replay is not None else contextlib.nullcontext():
            official.main.train([([im_q.clone(), im_k.clone()], None)], model, criterion, optimizer, epoch, args)
        queue = inner.queue.T if official.name == "mocov2" else inner.queue
        side.states.append(_snapshot(inner.encoder_q, inner.encoder_k, queue, int(inner.queue_ptr), optimizer,
                                     names))
    return side


def _load_official(model: nn.Module, init: dict, method: str) -> None:
    """The project's initial encoders and queue into the official model (MoCo keeps its queue as (dim, K))."""
    own = {k: v for k, v in init.items() if k.startswith(("encoder_q.", "encoder_k."))}
    missing, unexpected = model.load_state_dict(own, strict=False)
    if unexpected or set(missing) - {"queue", "queue_ptr"}:
        raise FidelityError(f"the official model's parameters do not match the project's ({unexpected or missing}).")
    keys = init["queue.keys"]
    with torch.no_grad():
        model.queue.copy_(keys.T if method == "mocov2" else keys)
        model.queue_ptr.zero_()


class _Replay:
    """Feeds the project's synthesis draws to the official SynCo forward, in the order it asks for them.

    The official builder draws positions in its pool of hardest negatives (``torch.topk``, unsorted) with
    ``torch.randint`` and coefficients with ``torch.rand``/``torch.randn_like``, type by type. While it runs,
    those three functions return the project's draws translated into the official pool's positions, and
    ``torch.topk`` is observed to learn that pool. A pool that lacks a row the project drew, or a request of
    another shape or order, fails the check.
    """

    def __init__(self, draws, cfg: PretrainConfig):
        self.draws, self.synth = draws, cfg.synthesis
        self.pool: torch.Tensor | None = None
        self.saved: dict = {}
        self.pending: list[tuple[str, tuple[int, ...], Callable[[], torch.Tensor]]] = []
        self.mismatch: str | None = None

    def _queue(self) -> None:
        d, s = self.draws, self.synth
        span = lambda lo_hi: lo_hi[1] - lo_hi[0]  # noqa: E731
        self.pending = [
            ("randint", (*d.interpolated.shape,), lambda: self._positions(d.interpolated)),
            ("rand", (*d.alpha.shape, 1), lambda: ((d.alpha - s.alpha_range[0]) / span(s.alpha_range))[..., None]),
            ("randint", (*d.extrapolated.shape,), lambda: self._positions(d.extrapolated)),
            ("rand", (*d.beta.shape, 1), lambda: ((d.beta - s.beta_range[0]) / span(s.beta_range))[..., None]),
            ("randint", (2, *d.mixed_i.shape), lambda: torch.stack((self._positions(d.mixed_i),
                                                                     self._positions(d.mixed_j)))),
            ("rand", (*d.gamma.shape, 1), lambda: ((d.gamma - s.gamma_range[0]) / span(s.gamma_range))[..., None]),
            ("randint", (*d.noise.shape,), lambda: self._positions(d.noise)),
            ("randn_like", (*d.eps.shape,), lambda: d.eps / s.sigma),
            ("randint", (*d.perturbed.shape,), lambda: self._positions(d.perturbed)),
            ("randint", (*d.adversarial.shape,), lambda: self._positions(d.adversarial)),
        ]

    def _positions(self, rows: torch.Tensor) -> torch.Tensor:
        """Where each queue row of ``rows`` sits in the official pool of each query (-1 if absent)."""
        k = int(max(self.pool.max(), rows.max())) + 1
        where = torch.full((self.pool.shape[0], k), -1, dtype=torch.long)
        where.scatter_(1, self.pool, torch.arange(self.pool.shape[1]).expand_as(self.pool))
        pos = where.gather(1, rows)
        if (pos < 0).any() and self.mismatch is None:
            self.mismatch = "the official pool of hardest negatives lacks rows the project drew from"
        return pos.clamp_min(0)

    def _serve(self, kind: str, shape) -> torch.Tensor:
        if not self.pending:
            raise FidelityError(f"the official SynCo asked for one more {kind} than the script knows.")
        want, expected, make = self.pending.pop(0)
        if want != kind or tuple(shape) != expected:
            raise FidelityError(f"the official SynCo asked for {kind}{tuple(shape)} where the script expected "
                                f"{want}{expected}; its draws changed order.")
        return make()

    def __enter__(self):
        if self.draws is None:  # warm-up: the official forward must not draw either
            return self
        self._queue()
        self.saved = {name: getattr(torch, name) for name in ("topk", "randint", "rand", "randn_like")}
        real_topk = self.saved["topk"]

        def topk(*a, **kw):
            out = real_topk(*a, **kw)
            self.pool = out[1]
            return out

        torch.topk = topk
        torch.randint = lambda low, high, size, **kw: self._serve("randint", size)
        torch.rand = lambda size, **kw: self._serve("rand", size)
        torch.randn_like = lambda like, **kw: self._serve("randn_like", like.shape)
        return self

    def __exit__(self, *exc):
        for name, fn in self.saved.items():
            setattr(torch, name, fn)
        if exc[0] is None and self.pending:
            raise FidelityError(f"the official SynCo drew {len(self.pending)} fewer times than the script expects.")
        return False


_UNTOUCHED: dict[tuple[str, str, str], _Side] = {}


def _self_side(cfg: PretrainConfig, init: dict, batches, key: tuple[str, str, str], steps) -> _Side:
    """Self-test: the project's own step on a second, untouched model (no official code); computed once."""
    if key not in _UNTOUCHED:
        _UNTOUCHED[key], _ = _project_side(cfg, init, batches, None, None, steps)
    return _UNTOUCHED[key]


def step_checks(official: Official | None, method: str, arch: str, mutation: Mutation | None = None,
                size: str = "full") -> list[Check]:
    """The project's steps against the official ones (or, with ``official=None``, an untouched project model)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        cfg = project_config(method, arch, size=size)
        torch.manual_seed(0)
        init = MomentumContrast(cfg.arch, cfg.dim, cfg.queue_size, cfg.momentum, cfg.temperature,
                                cfg.synthesis, bn_splits=1, seed=cfg.seed).state_dict()
        steps = STEPS if size == "full" else SMALL_STEPS
        batches = _batches(cfg, len(steps), seed=1)
        draws = [] if method == "synco" else None
        ours, generator_states = _project_side(cfg, init, batches, mutation, draws, steps)
        if official is None:
            theirs = _self_side(cfg, init, batches, (method, arch, size), steps)
        else:
            active = [d for d in (draws or [])]
            per_step = [None if not cfg.synthesis.active(epoch) else active.pop(0) for epoch, _ in steps]
            theirs = _official_side(official, cfg, init, batches, generator_states, per_step, steps)
    finally:
        torch.set_default_dtype(previous)
    loop = f"{method}/{arch.removeprefix('resnet')}"
    checks = [Check(loop, "loss, every step", max_abs_diff(ours.losses, theirs.losses))]
    for key in ours.states[0]:
        values = [s[key] for s in ours.states], [s[key] for s in theirs.states]
        tol = 0.0 if key in ("queue pointer", "lr", "weight-decay set") else None
        check = Check(loop, f"{key}, steps 1-{len(steps)}" if key != "lr" else "lr of every step",
                      max_abs_diff(*values) if tol is not None else max_scaled_diff(*values),
                      detail="" if tol is not None else "relative to max(1, |value|)")
        if tol is not None:
            check.tol = tol
        checks.append(check)
    return checks


@contextlib.contextmanager
def single_process_group() -> Iterator[None]:
    """A real one-process gloo group (file rendezvous: no port to race for), unless one exists already."""
    if dist.is_initialized():
        yield
        return
    with tempfile.TemporaryDirectory() as tmp:
        dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=0, world_size=1)
        try:
            yield
        finally:
            dist.destroy_process_group()


# -- split batch norm against shuffle-BN on several processes ------------------------------------------------------

def split_bn_checks(checkout: Checkout | None, splits: int = 2, size: str = "full") -> list[Check]:
    """``bn_splits=K`` on one process against the official shuffle-BN on K gloo processes: one forward (key
    encoder update, shuffled keys, enqueue) of MoCo v2; the keys (the queue's new block) and the key encoder.

    Running statistics: the project averages the slices' updates; official DDP keeps each rank's own and
    broadcasts rank 0's at the next forward, so a checkpoint holds rank 0's (a recorded deviation; compared
    here as the ranks' mean).
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        cfg = project_config("mocov2", "resnet18", bn_splits=splits, size=size)
        model, _, _ = train.build_model(cfg, 1, torch.device("cpu"))
        (im_q, im_k), = _batches(cfg, 1, seed=2)
        state = model.generator.get_state()
        init = {k: v.clone() for k, v in model.state_dict().items()}
        with torch.no_grad():
            model(im_q, im_k, 0)
        ours_keys = model.queue.keys[:cfg.batch_size].clone()
        ours_k = model.encoder_k.state_dict()
    finally:
        torch.set_default_dtype(previous)
    with tempfile.TemporaryDirectory() as tmp:
        payload = Path(tmp) / "inputs.pt"
        torch.save({"init": init, "im_q": im_q, "im_k": im_k, "state": state, "cfg": cfg.to_dict()}, payload)
        mp.spawn(_official_rank, args=(splits, str(checkout.root) if checkout else None, tmp), nprocs=splits)
        ranks = [torch.load(Path(tmp) / f"rank{r}.pt") for r in range(splits)]
    params = {n for n, _ in model.encoder_k.named_parameters()}
    stats = [n for n in ours_k if n.endswith(("running_mean", "running_var"))]
    loop = f"splitbn x{splits}"
    return [
        Check(loop, "key features (the new queue block)", max_abs_diff(ours_keys, ranks[0]["keys"])),
        Check(loop, "key encoder parameters", max_scaled_diff({n: ours_k[n] for n in params},
                                                               {n: ranks[0]["encoder_k"][n] for n in params})),
        Check(loop, "key encoder BN statistics (mean of ranks)",
              max_scaled_diff({n: ours_k[n] for n in stats},
                              {n: sum(r["encoder_k"][n] for r in ranks) / splits for n in stats}),
              detail="relative to max(1, |value|)"),
    ]


def _official_rank(rank: int, world: int, root: str | None, tmp: str) -> None:
    """One process of the official (or, in self-test, the project's DDP) forward; writes its results."""
    torch.set_default_dtype(torch.float64)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=world)
    try:
        inputs = torch.load(Path(tmp) / "inputs.pt")
        cfg = config_from_dict(inputs["cfg"])
        batch = cfg.batch_size // world
        im_q = inputs["im_q"][rank * batch:(rank + 1) * batch]
        im_k = inputs["im_k"][rank * batch:(rank + 1) * batch]
        if root is None:
            cfg.bn_splits = 1
            model, _, _ = train.build_model(cfg, world, torch.device("cpu"))
            model.load_state_dict(inputs["init"])
            model.generator.set_state(inputs["state"])
            net = train.wrap_ddp(model, torch.device("cpu"))
            with torch.no_grad():
                net(im_q, im_k, 0)
            keys, encoder_k = model.queue.keys[:cfg.batch_size], model.encoder_k
        else:
            official = load_official(open_checkout(root, "facebookresearch/moco", MOCO_REQUIRED), "mocov2")
            args = Namespace(**vars(official.args))
            args.arch, args.moco_k = cfg.arch, cfg.queue_size
            model = evaluate(official, main_worker_expression(official, "model"), args=args)
            _load_official(model, inputs["init"], "mocov2")
            net = nn.parallel.DistributedDataParallel(model)
            torch.set_rng_state(inputs["state"])  # after the init's draws: rank 0's permutation is broadcast
            with torch.no_grad():
                net(im_q=im_q, im_k=im_k)
            keys, encoder_k = model.queue.T[:cfg.batch_size], model.encoder_k
        torch.save({"keys": keys.clone(), "encoder_k": encoder_k.state_dict()}, Path(tmp) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


# -- mutations: each must make the checks fail -------------------------------------------------------------------

def _update_after_keys(model: MomentumContrast, optimizer, cfg) -> None:
    update, keys = model._momentum_update, model._shuffled_keys
    model._momentum_update = lambda: None

    def shuffled_then_update(im_k):
        k = keys(im_k)
        update()
        return k

    model._shuffled_keys = shuffled_then_update


def _keys_not_unshuffled(model: MomentumContrast, optimizer, cfg) -> None:
    def still_shuffled(im_k):
        perm = torch.randperm(im_k.shape[0], generator=model.generator, device=im_k.device)
        return model.encoder_k(im_k[perm])

    model._shuffled_keys = torch.no_grad()(still_shuffled)


def _enqueue_reversed(model: MomentumContrast, optimizer, cfg) -> None:
    enqueue = model.queue.enqueue
    model.queue.enqueue = lambda keys: enqueue(keys.flip(0))


def _bn_without_decay(model: MomentumContrast, optimizer, cfg) -> None:
    bn = {id(p) for m in model.encoder_q.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
          for p in m.parameters()}
    group = optimizer.param_groups[0]
    params = group.pop("params")
    optimizer.param_groups.clear()
    optimizer.add_param_group({**group, "params": [p for p in params if id(p) not in bn]})
    optimizer.add_param_group({**group, "params": [p for p in params if id(p) in bn], "weight_decay": 0.0})


def _lr_nudged(model, optimizer, cfg: PretrainConfig) -> None:
    lr_at = cfg.lr_at
    cfg.lr_at = lambda *a: lr_at(*a) * (1 + 1e-6)


MUTATIONS: dict[str, Mutation] = {
    "key-encoder update after computing the keys": _update_after_keys,
    "keys not un-shuffled": _keys_not_unshuffled,
    "enqueue order reversed": _enqueue_reversed,
    "BN parameters excluded from weight decay": _bn_without_decay,
    "lr x (1 + 1e-6)": _lr_nudged,
}
