"""The evaluation loops (linear probe, semi-supervised fine-tuning, kNN) held to the official code.

The transfer numbers are only comparable with the papers' if this project trains the linear probe as
facebookresearch/moco's ``main_lincls.py`` and fine-tunes as giakoumoglou/synco's ``main_semisup.py`` do.
Each check feeds both sides the same float64 ResNet-18 or ResNet-50 (torchvision's random initialisation
under a fixed seed: the loops, not the weights, are under test; the project builds the ResNet-18 through
its MODEL.ARCH key), the same image batches and the same fc initialisation draw, runs a few SGD steps of
each, and compares what they hold afterwards. The official side is the user's checkout,
executed as written (:mod:`fidelity_official`): its ``train()`` and ``adjust_learning_rate()``, the
scheduler it builds, and the set-up statements of its ``main_worker()`` (freezing, fc init, optimizer),
which are picked out of that function by their text and executed alone, because the function as a whole
needs GPUs, an ImageNet folder and a checkpoint. The project side is its real entry points,
``fit_linear`` and ``run_point``, on a small ImageFolder written to a temporary folder.

What the harness adds on the project side, and why: the project casts features and logits with
``.float()`` (for bf16 autocast), which would round a float64 run to float32; the frozen network's output
(linear) and the fine-tuned network's logits (semi-supervised) are therefore a float64 tensor whose
``.float()`` keeps float64 (:class:`_Float64`). Nothing else of the project is replaced.

The official ResNet is built as ``models.__dict__[args.arch](num_classes=6)`` rather than main_worker's
1000-class ``models.__dict__[args.arch]()``: six classes keep the fc (and the project's checkpoints) small,
and main_worker's own statements then freeze, initialise and optimise that fc.

Fine-tuning a random ResNet on batches of four is chaotic: a relative change of 1e-6 in one lr moves weights
by O(1) within six steps. The semi-supervised checks therefore hold the project to the official arithmetic
(both use torch's SGD on the same kernels: the differences seen are 0), and the reference loops of the
self-test write out torch's SGD op for op.

Without the official code (``self_test_checks``, for CI) the same project runs are compared with small
reference loops written here from the published protocol (pinned constants below), so the machinery and
the mutations (:data:`EVAL_MUTATIONS`) are exercised everywhere.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import io
import math
import tempfile
import types
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from fidelity_official import Check, Checkout, Edit, FidelityError, load_module, max_abs_diff
from PIL import Image
from torch import nn

from synco.common.errors import UserError
from synco.pretrain import knn as knn_vote
from transfer.classification import linear, semisup
from transfer.classification.data import ClassificationData, ImageDataset, epoch_order
from transfer.classification.loop import Job, batches
from transfer.classification.protocol import Protocol, load_protocol
from transfer.classification.weights import BackboneWeights
from transfer.tasks import TASKS

MOCO_REQUIRED = ("main_lincls.py",)
SYNCO_REQUIRED = ("main_semisup.py",)
MOCO_COMMIT, SYNCO_COMMIT = "132aea9", "79a9c42"

# The published protocols, pinned: the reference loops of the self-test use them, and the tests hold the
# project's YAML files to them. M = facebookresearch/moco@132aea9 main_lincls.py (SynCo's scripts run
# MoCo's probe with --lr 30, its default: scripts/lineval_synco_r50_200ep.sh:14).
LINEAR_PROTOCOL: dict[str, Any] = {
    "TRAIN.EPOCHS": 100,  # M:57 --epochs default
    "TRAIN.LR": 30.0,  # M:79 --lr default
    "TRAIN.MILESTONES": [60, 80],  # M:86-87 --schedule default
    "TRAIN.GAMMA": 0.1,  # M:608 adjust_learning_rate: lr *= 0.1 per passed milestone
    "TRAIN.SCHEDULE": "step",  # M:604-610, set at the start of every epoch (M:402)
    "TRAIN.MOMENTUM": 0.9,  # M:92 --momentum default
    "TRAIN.WEIGHT_DECAY": 0.0,  # M:96 --wd default
    "TRAIN.NESTEROV": False,  # M:309 SGD(parameters, lr, momentum=, weight_decay=)
    "TRAIN.FC_INIT_STD": 0.01,  # M:240-241 fc.weight.normal_(0, 0.01), fc.bias.zero_()
    "TRAIN.BN_MODE": "eval",  # M:450 model.eval() in train(): BN statistics frozen
}
# S = giakoumoglou/synco@79a9c42 main_semisup.py; R = its scripts/semisup_synco_r50_800ep.sh, which runs
# S with --weights finetune and the values below (the MoCo v2 and MoCHI scripts pass the same).
SEMISUP_PROTOCOL: dict[str, Any] = {
    "TRAIN.CLASSIFIER_LR": 0.5,  # R:39/55 --lr-classifier 0.5 (S:45's default 0.3 is not what R runs)
    "TRAIN.BACKBONE_LRS": [0.005, 0.01, 0.02, 0.05, 0.1],  # R:32 learning_rates, R:38/54 --lr-backbone
    "TRAIN.MOMENTUM": 0.9,  # S:46 --momentum default
    "TRAIN.WEIGHT_DECAY": 1e-6,  # S:47 --wd default, on every parameter (S:217)
    "TRAIN.NESTEROV": False,  # S:217 optim.SGD(param_groups, 0, momentum=, weight_decay=)
    "TRAIN.SCHEDULE": "cosine",  # S:218 CosineAnnealingLR(optimizer, args.epochs), stepped per epoch (S:394)
    "TRAIN.FC_INIT_STD": 0.01,  # S:165-166 fc.weight.normal_(0, 0.01), fc.bias.zero_()
    "TRAIN.BN_MODE": "train",  # S:356-357 --weights finetune -> model.train()
}
SEMISUP_EPOCHS = {"semisup1": 60, "semisup10": 30}  # R:40 --epochs 60 (1 %), R:56 --epochs 30 (10 %)
# The vote of Wu et al. 2018 (InstDisc), as DINO's eval_knn.py and solo-learn's WeightedKNNClassifier.
KNN_PROTOCOL: dict[str, Any] = {"KNN.KS": [20, 200], "KNN.TEMPERATURE": 0.07}

# The text edits made to the official files before they run, each only because the file cannot run on a
# CPU (or with this PyTorch) as written; every one must match its exact count.
_TARGET_OLD = "target = target.cuda(args.gpu, non_blocking=True)"
_TARGET_NEW = "target = target.to(images.device, non_blocking=True)"
_CPU_WHY = "a CPU run: the labels stay where the images are (train() and validate())"
MOCO_EDITS = (
    Edit("main_lincls.py", _TARGET_OLD, _TARGET_NEW, 2, _CPU_WHY),
    Edit("main_lincls.py", "correct_k = correct[:k].view(-1)", "correct_k = correct[:k].reshape(-1)", 1,
         "accuracy()'s top-5 view of a transposed comparison fails on current PyTorch; SynCo's copy of this "
         "file has the same reshape"),
)
SYNCO_EDITS = (
    Edit("main_semisup.py", _TARGET_OLD, _TARGET_NEW, 2, _CPU_WHY),
    Edit("main_semisup.py", "import torch.optim\n", "import torch.optim\nimport torch.optim as optim\n", 1,
         "main_worker() calls optim.SGD and optim.lr_scheduler, a name the file never imports"),
)
EVAL_EDITS = MOCO_EDITS + SYNCO_EDITS

# main_worker()'s set-up statements that are executed (each picked by a text only it contains), in file order.
LINCLS_SETUP = ("param.requires_grad = False", "model.fc.weight.data.normal_", "model.fc.bias.data.zero_",
                "criterion = nn.CrossEntropyLoss()", "parameters = list(filter(", "assert len(parameters) == 2",
                "optimizer = torch.optim.SGD(")
SEMISUP_OPTIMIZER = ("param_groups = [dict(", "param_groups.append(", "optimizer = optim.SGD(",
                     "scheduler = optim.lr_scheduler.CosineAnnealingLR(")
SEMISUP_SETUP = ("model.fc.weight.data.normal_", "model.fc.bias.data.zero_", "model.requires_grad_(False)",
                 "classifier_parameters, model_parameters = [], []", "classifier_parameters.append(",
                 "criterion = nn.CrossEntropyLoss()", *SEMISUP_OPTIMIZER)

SEED = 0
NUM_CLASSES = 6  # at least 5: both official train() functions measure top-5 accuracy
TRAIN_PER_CLASS, VAL_PER_CLASS, IMAGE_PX = 2, 1, 40
# 12 training images in batches of 4: three steps an epoch, no batch of one (which the project's fine-tuning
# drops in BN-train mode and main_semisup.py does not), nor of two (BN of two samples is ill-conditioned).
SMALL = {"DATA.NUM_CLASSES": NUM_CLASSES, "DATA.SIZE": 32, "DATA.RESIZE": 36, "TRAIN.BATCH_SIZE": 4,
         "CHANNELS_LAST": False, "WORKERS": 0, "EVAL_BATCH_SIZE": 16}
# The linear probe trains epochs 0 and 1, then epoch 60, then epoch 80 (the project resumes from its own
# checkpoint, marked as written after epoch 60 / 80; the official side calls adjust_learning_rate(60) and
# (80)), so the fc sees lr 30, 3 and 0.3 with its momentum carried over.
LINEAR_STAGES = ((0, 1), (60,), (80,))
STEPS_PER_EPOCH = math.ceil(NUM_CLASSES * TRAIN_PER_CLASS / SMALL["TRAIN.BATCH_SIZE"])
SEMISUP_RUN_EPOCHS = 2  # cosine over 2 epochs: lr x1 in epoch 0, x0.5 in epoch 1
SEMISUP_RUN_BACKBONE_LR = max(SEMISUP_PROTOCOL["TRAIN.BACKBONE_LRS"])
KNN_CLASSES, KNN_DIM, KNN_BANK, KNN_QUERIES = 10, 32, 400, 300
# Ties excluded by construction: a query is kept only if its k-th and (k+1)-th similarities and its six best
# class scores are this far apart (relative), 100 times the float32 error of the project's vote.
KNN_MARGIN = 1e-4
LOOPS = ("linear", "semisup", "knn")
# The protocol's ResNet-50, and the ResNet-18 the project also evaluates (MODEL.ARCH, a recorded deviation).
ARCHS = ("resnet18", "resnet50")
SELF_TEST_ARCHS = ("resnet18",)  # the loops do not depend on the depth; CI runs the cheaper one


class _Float64(torch.Tensor):
    """A float64 tensor whose ``.float()`` keeps float64 (see the module docstring)."""

    def float(self, *args, **kwargs):
        return self


class _Float64Output(nn.Module):
    """The frozen network handed to ``fit_linear``, its features kept float64."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).as_subclass(_Float64)


def _clone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone().as_subclass(torch.Tensor) for name, tensor in state.items()}


@contextlib.contextmanager
def _float64_cpu() -> Iterator[None]:
    """float64 by default and the caller's RNG untouched afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.set_default_dtype(previous)


@contextlib.contextmanager
def _patched(module: types.ModuleType, name: str, wrap: Callable[[Any], Any]) -> Iterator[None]:
    """``module.name`` replaced by ``wrap(original)`` while active (the project's files are never edited)."""
    original = getattr(module, name)
    setattr(module, name, wrap(original))
    try:
        yield
    finally:
        setattr(module, name, original)


# ---------------------------------------------------------------------------------------------- the fixture


@dataclasses.dataclass
class _Fixture:
    """A 6-class ImageFolder on disk, and the frozen float64 ResNet trunks both sides start from."""

    root: Path
    data: ClassificationData
    trunks: dict[str, dict[str, torch.Tensor]] = dataclasses.field(default_factory=dict)

    def trunk(self, arch: str) -> dict[str, torch.Tensor]:
        """torchvision's initialisation of ``arch`` under the fixed seed, without fc (made once)."""
        if arch not in self.trunks:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(SEED)
                state = getattr(torchvision.models, arch)().state_dict()
            self.trunks[arch] = {name: tensor for name, tensor in state.items() if not name.startswith("fc.")}
        return self.trunks[arch]

    def protocol(self, task: str, arch: str, overrides: dict[str, Any] | None = None) -> Protocol:
        """The project's shipped protocol of ``task`` on ``arch``, shrunk to the fixture (sizes only), plus
        ``overrides``."""
        values = {**SMALL, "MODEL.ARCH": arch, **(overrides or {})}
        return load_protocol(TASKS[task], [item for pair in values.items() for item in pair])

    def job(self, protocol: Protocol, output: Path) -> Job:
        weights = BackboneWeights(self.trunk(protocol.arch), protocol.arch, "fidelity", None, "random", None,
                                  f"fidelity-{protocol.arch}:{SEED}")
        return Job(protocol, self.data, weights, output, SEED, torch.device("cpu"), output / "features")

    def batches(self, protocol: Protocol, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Epoch ``epoch``'s batches as the project draws them (its order and augmentation): the official
        side and the references train on exactly these."""
        dataset = ImageDataset(self.data.train, protocol, train=True, seed=SEED)
        dataset.set_epoch(epoch)
        loaded = []
        for chunk in batches(epoch_order(SEED, epoch, len(dataset)), protocol["TRAIN.BATCH_SIZE"]):
            items = [dataset[index] for index in chunk]
            loaded.append((torch.stack([image for image, _ in items]), torch.tensor([label for _, label in items])))
        assert min(len(labels) for _, labels in loaded) > 1, "the fixture must not make a batch of one"
        return loaded

    def network(self, arch: str) -> nn.Module:
        """The fixture's ``arch`` with a fresh ``NUM_CLASSES`` fc (its draw is replaced by each side's init)."""
        model = getattr(torchvision.models, arch)(num_classes=NUM_CLASSES)
        model.load_state_dict(self.trunk(arch), strict=False)
        return model


@contextlib.contextmanager
def _fixture() -> Iterator[_Fixture]:
    rng = np.random.default_rng(SEED)
    with tempfile.TemporaryDirectory(prefix="fidelity-eval-") as folder:
        root = Path(folder)
        samples: dict[str, list[tuple[str, int]]] = {"train": [], "val": []}
        classes = [f"class{label}" for label in range(NUM_CLASSES)]
        for split, count in (("train", TRAIN_PER_CLASS), ("val", VAL_PER_CLASS)):
            for label, name in enumerate(classes):
                (root / split / name).mkdir(parents=True)
                for index in range(count):
                    pixels = rng.integers(0, 90, (IMAGE_PX, IMAGE_PX, 3), dtype=np.uint8)
                    pixels[..., label % 3] += 40 * (1 + label // 3)  # a class colour, so labels mean something
                    path = root / split / name / f"{name}_{index}.png"
                    Image.fromarray(pixels).save(path)
                    samples[split].append((str(path), label))
        yield _Fixture(root, ClassificationData(classes, samples["train"], samples["val"]))


# ------------------------------------------------------------------------------------- the official side


@dataclasses.dataclass
class _Official:
    """An official file executed as a module, and its (edited) text to pick main_worker() statements from."""

    module: types.ModuleType
    source: str
    path: str
    hint: str  # what to do about a file this script does not know

    @classmethod
    def load(cls, checkout: Checkout, relpath: str, edits: Sequence[Edit], commit: str) -> _Official:
        name = f"fidelity_official_{checkout.repo.replace('/', '_')}_{Path(relpath).stem}"
        module = load_module(checkout, relpath, name, edits)
        return cls(module, module.__source__, str(checkout.root / relpath),
                   f"check out {checkout.repo}@{commit}")

    def member(self, name: str) -> Any:
        if not hasattr(self.module, name):
            raise FidelityError(f"{self.path} has no {name}; {self.hint}.")
        return getattr(self.module, name)

    def call(self, what: str, function: Callable, *args) -> Any:
        """``function(*args)`` with its progress prints swallowed; a failure is one sentence naming ``what``."""
        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return function(*args)
        except FidelityError:
            raise
        except Exception as exc:
            raise FidelityError(f"{self.path}: {what} failed on this checkout ({type(exc).__name__}: {exc}); "
                                f"{self.hint}.") from exc

    def args(self, argv: list[str]) -> Any:
        """The Namespace main() would parse from ``argv`` (a CPU run: ``gpu`` None, not distributed)."""
        args = self.call("parsing the command line", self.member("parser").parse_args, argv)
        args.gpu, args.distributed, args.print_freq = None, False, 10 ** 9
        return args

    def require(self, markers: Sequence[str], members: Sequence[str]) -> _Official:
        """Fail now, in one sentence, if a statement or function the checks use is not in this file."""
        self._statements(markers)
        for name in members:
            self.member(name)
        return self

    def _statements(self, markers: Sequence[str]) -> list[ast.stmt]:
        """main_worker()'s top-level statements that contain ``markers`` (exactly one each), in file order."""
        tree = ast.parse(self.source)
        worker = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main_worker"]
        if len(worker) != 1:
            raise FidelityError(f"{self.path} has no main_worker() function; {self.hint}.")
        chosen = []
        for marker in markers:
            hits = [node for node in worker[0].body if marker in (ast.get_source_segment(self.source, node) or "")]
            if len(hits) != 1:
                raise FidelityError(f"{self.path}: main_worker() has {len(hits)} statements containing {marker!r}, "
                                    f"1 expected; {self.hint}.")
            chosen.append(hits[0])
        return sorted(chosen, key=lambda node: node.lineno)

    def main_worker_lines(self, markers: Sequence[str], names: dict[str, Any]) -> dict[str, Any]:
        """Execute the statements of main_worker() that contain ``markers`` in the module's globals plus ``names``;
        the namespace they leave."""
        code = compile(ast.Module(body=self._statements(markers), type_ignores=[]), self.path, "exec")
        namespace = {**vars(self.module), **names}
        self.call("main_worker()'s set-up", exec, code, namespace)
        return namespace


def _group_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[list[str]]:
    names = {id(param): name for name, param in model.named_parameters()}
    return [[names.get(id(param), "?") for param in group["params"]] for group in optimizer.param_groups]


def _hyper(groups: Sequence[dict[str, Any]]) -> list[list[float]]:
    """What SGD does with each group besides its lr: momentum, weight decay, dampening, nesterov."""
    return [[float(group["momentum"]), float(group["weight_decay"]), float(group["dampening"]),
             float(group["nesterov"])] for group in groups]


# ----------------------------------------------------------------------------------------- the linear probe


@dataclasses.dataclass
class _LinearRun:
    """What one side of the linear probe leaves: fc at init and after each stage, lrs, schedule, backbone."""

    init: dict[str, torch.Tensor]
    stages: list[dict[str, torch.Tensor]]
    lrs: list[float]
    schedule: list[float]
    backbone: dict[str, torch.Tensor]
    hyper: list[list[float]]


def _project_linear(fixture: _Fixture, arch: str) -> _LinearRun:
    """``fit_linear`` through the stages (see LINEAR_STAGES), read from its checkpoint after each."""
    captured: dict[str, dict[str, torch.Tensor]] = {}

    def capture_init(original):
        def new_classifier(*args, **kwargs) -> nn.Linear:
            fc = original(*args, **kwargs)
            captured.setdefault("init", _clone(fc.state_dict()))
            return fc
        return new_classifier

    stages, lrs, hyper = [], [], []
    with tempfile.TemporaryDirectory(prefix="fidelity-linear-") as folder, \
            _patched(linear, "new_classifier", capture_init):
        output = Path(folder)
        job = fixture.job(fixture.protocol("linear", arch), output)
        backbone = _Float64Output(linear.frozen_backbone(job))
        checkpoint = output / linear.CHECKPOINT
        for number, epochs in enumerate(LINEAR_STAGES):
            if number:
                state = torch.load(checkpoint, map_location="cpu", weights_only=False)
                state["epoch"] = epochs[0]
                torch.save(state, checkpoint)
            job.protocol = fixture.protocol("linear", arch, {"TRAIN.EPOCHS": epochs[-1] + 1})
            linear.fit_linear(job, backbone, resume=bool(number))
            state = torch.load(checkpoint, map_location="cpu", weights_only=False)
            stages.append(_clone(state["fc"]))
            lrs.append(state["optimizer"]["param_groups"][0]["lr"])
            hyper = _hyper(state["optimizer"]["param_groups"])
        backbone_after = _clone(backbone.net.state_dict())
    shipped = load_protocol(TASKS["linear"])
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)
    schedule = []
    for epoch in range(shipped["TRAIN.EPOCHS"]):  # fit_linear's line: set_lrs(optimizer, [LR], lr_factor(p, epoch))
        linear.set_lrs(probe, [shipped["TRAIN.LR"]], linear.lr_factor(shipped, epoch))
        schedule.append(probe.param_groups[0]["lr"])
    return _LinearRun(captured["init"], stages, lrs, schedule, backbone_after, hyper)


def _official_linear(official: _Official, fixture: _Fixture, arch: str) -> _LinearRun:
    """main_lincls.py: main_worker()'s freeze / fc init / optimizer, then adjust_learning_rate() and train()."""
    args = official.args(["-a", arch, str(fixture.root)])
    model = fixture.network(arch)
    torch.manual_seed(SEED)  # main_worker's normal_ draws from the global RNG: the project's draw, same seed
    names = official.main_worker_lines(LINCLS_SETUP, {"model": model, "args": args})
    optimizer, criterion = names["optimizer"], names["criterion"]
    init = _clone(model.fc.state_dict())
    adjust, train = official.member("adjust_learning_rate"), official.member("train")
    protocol = fixture.protocol("linear", arch)
    stages, lrs = [], []
    for epochs in LINEAR_STAGES:
        for epoch in epochs:
            official.call("adjust_learning_rate()", adjust, optimizer, epoch, args)
            official.call("train()", train, fixture.batches(protocol, epoch), model, criterion, optimizer, epoch, args)
        stages.append(_clone(model.fc.state_dict()))
        lrs.append(optimizer.param_groups[0]["lr"])
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)
    schedule = []
    for epoch in range(args.epochs):
        official.call("adjust_learning_rate()", adjust, probe, epoch, args)
        schedule.append(probe.param_groups[0]["lr"])
    backbone = {name: tensor for name, tensor in _clone(model.state_dict()).items() if not name.startswith("fc.")}
    return _LinearRun(init, stages, lrs, schedule, backbone, _hyper(optimizer.param_groups))


def _step_lr(epoch: int) -> float:
    """main_lincls.py's schedule from the pinned values: lr x0.1 for every milestone passed."""
    passed = sum(1 for milestone in LINEAR_PROTOCOL["TRAIN.MILESTONES"] if epoch >= milestone)
    return LINEAR_PROTOCOL["TRAIN.LR"] * LINEAR_PROTOCOL["TRAIN.GAMMA"] ** passed


def _sgd_step(param: torch.Tensor, grad: torch.Tensor, momenta: dict[str, torch.Tensor], name: str, lr: float,
              momentum: float, weight_decay: float) -> None:
    """torch's SGD (no dampening, no nesterov) written out op for op: the references do not use torch.optim, and
    fine-tuning a random network on batches of four amplifies even a last-bit difference in an update."""
    direction = grad.add(param, alpha=weight_decay) if weight_decay else grad
    if name in momenta:
        momenta[name].mul_(momentum).add_(direction)
    else:
        momenta[name] = direction.clone()
    param.add_(momenta[name], alpha=-lr)


def _reference_linear(fixture: _Fixture, arch: str) -> _LinearRun:
    """The protocol of main_lincls.py from the pinned values: frozen network in eval mode, fc N(0, std), SGD."""
    net = fixture.network(arch)
    width = net.fc.in_features
    net.fc = nn.Identity()
    net.eval()
    generator = torch.Generator().manual_seed(SEED)
    weight = torch.empty(NUM_CLASSES, width).normal_(0.0, LINEAR_PROTOCOL["TRAIN.FC_INIT_STD"], generator=generator)
    fc = {"weight": weight.requires_grad_(), "bias": torch.zeros(NUM_CLASSES, requires_grad=True)}
    init = _clone(fc)
    protocol = fixture.protocol("linear", arch)
    momenta: dict[str, torch.Tensor] = {}
    stages, lrs = [], []
    for epochs in LINEAR_STAGES:
        for epoch in epochs:
            for images, labels in fixture.batches(protocol, epoch):
                with torch.no_grad():
                    features = net(images)
                loss = F.cross_entropy(features @ fc["weight"].T + fc["bias"], labels)
                grads = torch.autograd.grad(loss, list(fc.values()))
                with torch.no_grad():
                    for (name, param), grad in zip(fc.items(), grads):
                        _sgd_step(param, grad, momenta, name, _step_lr(epoch), LINEAR_PROTOCOL["TRAIN.MOMENTUM"],
                                  LINEAR_PROTOCOL["TRAIN.WEIGHT_DECAY"])
        stages.append(_clone(fc))
        lrs.append(_step_lr(epochs[-1]))
    schedule = [_step_lr(epoch) for epoch in range(LINEAR_PROTOCOL["TRAIN.EPOCHS"])]
    hyper = [[LINEAR_PROTOCOL["TRAIN.MOMENTUM"], LINEAR_PROTOCOL["TRAIN.WEIGHT_DECAY"], 0.0,
              float(LINEAR_PROTOCOL["TRAIN.NESTEROV"])]]
    return _LinearRun(init, stages, lrs, schedule, _clone(net.state_dict()), hyper)


def _linear_checks(arch: str, ours: _LinearRun, theirs: _LinearRun, against: str) -> list[Check]:
    """fc, lr and frozen backbone of the project's probe on ``arch`` vs the other side's (``against``)."""
    steps = [STEPS_PER_EPOCH * len(epochs) for epochs in LINEAR_STAGES]
    checks = [Check("linear", f"{arch}: fc init", max_abs_diff(ours.init, theirs.init),
                    detail=f"N(0, 0.01) draw, bias 0, same seed, vs {against}"),
              Check("linear", f"{arch}: SGD settings", max_abs_diff(ours.hyper, theirs.hyper),
                    detail=f"momentum, weight decay, dampening, nesterov, vs {against}")]
    for epochs, count, mine, other in zip(LINEAR_STAGES, steps, ours.stages, theirs.stages):
        label = f"epochs {epochs[0]}-{epochs[-1]}" if len(epochs) > 1 else f"epoch {epochs[0]}"
        checks.append(Check("linear", f"{arch}: fc after {label} ({count} steps)", max_abs_diff(mine, other),
                            detail=f"vs {against}"))
    shown = ", ".join(f"{lr:g}" for lr in theirs.lrs)
    checks += [Check("linear", f"{arch}: lr of epochs 1 / 60 / 80", max_abs_diff(ours.lrs, theirs.lrs),
                     detail=f"vs {against}: {shown}"),
               Check("linear", f"{arch}: frozen backbone after training", max_abs_diff(ours.backbone, theirs.backbone),
                     detail=f"weights and BN statistics, vs {against}")]
    return checks


def _linear_schedule_checks(ours: _LinearRun, theirs: _LinearRun, against: str) -> list[Check]:
    return [Check("linear", f"lr schedule, epochs 0-{len(theirs.schedule) - 1}",
                  max_abs_diff(ours.schedule, theirs.schedule), detail=f"shipped linear.yaml vs {against}")]


# --------------------------------------------------------------------------------- semi-supervised tuning


@dataclasses.dataclass
class _SemisupRun:
    """What one side of the fine-tuning leaves: fc init, groups, the network after the run, lrs, schedules."""

    init: dict[str, torch.Tensor]
    groups: list[list[str]]
    hyper: list[list[float]]
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    lrs: list[float]  # [fc, backbone] in the last epoch run
    schedules: dict[str, list[list[float]]]  # task -> [fc, backbone] per (backbone lr, epoch)


def _project_semisup(fixture: _Fixture, arch: str) -> _SemisupRun:
    """``run_point`` for SEMISUP_RUN_EPOCHS epochs; its model and optimizer are caught as run_point makes them."""
    captured: dict[str, Any] = {}

    def capture_model(original):
        def model_factory(job: Job) -> nn.Module:
            model = original(job)
            captured["init"] = _clone(model.fc.state_dict())
            forward = model.forward
            model.forward = lambda images: forward(images).as_subclass(_Float64)
            captured["model"] = model
            return model
        return model_factory

    def capture_optimizer(original):
        def optimizer_factory(job: Job, model: nn.Module, backbone_lr: float):
            optimizer, bases = original(job, model, backbone_lr)
            captured["optimizer"] = optimizer
            return optimizer, bases
        return optimizer_factory

    run = {"TRAIN.EPOCHS": SEMISUP_RUN_EPOCHS, "CHECKPOINT_PERIOD": SEMISUP_RUN_EPOCHS,
           "TRAIN.BACKBONE_LRS": [SEMISUP_RUN_BACKBONE_LR]}
    with tempfile.TemporaryDirectory(prefix="fidelity-semisup-") as folder, \
            _patched(semisup, "_model", capture_model), _patched(semisup, "_optimizer", capture_optimizer):
        job = fixture.job(fixture.protocol("semisup1", arch, run), Path(folder))
        semisup.run_point(job, 0, SEMISUP_RUN_BACKBONE_LR, 0, resume=False)
        model, optimizer = captured["model"], captured["optimizer"]
        schedules = {}
        for task in SEMISUP_EPOCHS:
            shipped = load_protocol(TASKS[task])
            rows = []
            for backbone_lr in sorted(shipped["TRAIN.BACKBONE_LRS"]):
                probe, bases = semisup._optimizer(dataclasses.replace(job, protocol=shipped), model, backbone_lr)
                for epoch in range(shipped["TRAIN.EPOCHS"]):  # run_point: set_lrs(optimizer, bases, lr_factor(p, e))
                    semisup.set_lrs(probe, bases, semisup.lr_factor(shipped, epoch))
                    rows.append([group["lr"] for group in probe.param_groups])
            schedules[task] = rows
    return _SemisupRun(captured["init"], _group_names(model, optimizer), _hyper(optimizer.param_groups),
                       _clone(dict(model.named_parameters())), _clone(dict(model.named_buffers())),
                       [group["lr"] for group in optimizer.param_groups], schedules)


def _official_semisup(official: _Official, fixture: _Fixture, arch: str) -> _SemisupRun:
    """main_semisup.py as the SynCo script runs it (--weights finetune, --lr-classifier 0.5, a backbone lr)."""
    def argv(epochs: int, backbone_lr: float) -> list[str]:
        return [str(fixture.root), "-a", arch, "--weights", "finetune", "--lr-classifier",
                repr(SEMISUP_PROTOCOL["TRAIN.CLASSIFIER_LR"]), "--lr-backbone", repr(backbone_lr),
                "--epochs", str(epochs)]

    args = official.args(argv(SEMISUP_RUN_EPOCHS, SEMISUP_RUN_BACKBONE_LR))
    model = fixture.network(arch)
    torch.manual_seed(SEED)  # main_worker's normal_ draws from the global RNG: the project's draw, same seed
    names = official.main_worker_lines(SEMISUP_SETUP, {"model": model, "args": args})
    init = _clone(model.fc.state_dict())
    optimizer, scheduler, criterion = names["optimizer"], names["scheduler"], names["criterion"]
    groups, hyper = _group_names(model, optimizer), _hyper(optimizer.param_groups)
    train = official.member("train")
    protocol = fixture.protocol("semisup1", arch)
    lrs: list[float] = []
    for epoch in range(SEMISUP_RUN_EPOCHS):
        lrs = [group["lr"] for group in optimizer.param_groups]
        official.call("train()", train, fixture.batches(protocol, epoch), model, criterion, optimizer, scheduler,
                      epoch, args)
    params, buffers = _clone(dict(model.named_parameters())), _clone(dict(model.named_buffers()))
    schedules = {}
    for task, epochs in SEMISUP_EPOCHS.items():
        rows = []
        for backbone_lr in sorted(SEMISUP_PROTOCOL["TRAIN.BACKBONE_LRS"]):
            probe = official.main_worker_lines(SEMISUP_OPTIMIZER, {**names, "args": official.args(argv(epochs,
                                                                                                      backbone_lr))})
            for _ in range(epochs):
                rows.append([group["lr"] for group in probe["optimizer"].param_groups])
                official.call("the cosine scheduler", probe["scheduler"].step)
        schedules[task] = rows
    return _SemisupRun(init, groups, hyper, params, buffers, lrs, schedules)


def _cosine(base: float, epoch: int, epochs: int) -> float:
    return base * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def _reference_semisup(fixture: _Fixture, arch: str) -> _SemisupRun:
    """main_semisup.py's fine-tuning from the pinned values: all of the network in train mode, two lr groups."""
    model = fixture.network(arch)
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        model.fc.weight.normal_(0.0, SEMISUP_PROTOCOL["TRAIN.FC_INIT_STD"], generator=generator)
        model.fc.bias.zero_()
    init = _clone(model.fc.state_dict())
    params = dict(model.named_parameters())
    groups = [[name for name in params if name.startswith("fc.")], [name for name in params
                                                                     if not name.startswith("fc.")]]
    bases = [SEMISUP_PROTOCOL["TRAIN.CLASSIFIER_LR"], SEMISUP_RUN_BACKBONE_LR]
    protocol = fixture.protocol("semisup1", arch)
    momenta: dict[str, torch.Tensor] = {}
    lrs: list[float] = []
    for epoch in range(SEMISUP_RUN_EPOCHS):
        lrs = [_cosine(base, epoch, SEMISUP_RUN_EPOCHS) for base in bases]
        model.train()
        for images, labels in fixture.batches(protocol, epoch):
            loss = F.cross_entropy(model(images), labels)
            grads = torch.autograd.grad(loss, list(params.values()))
            with torch.no_grad():
                for (name, param), grad in zip(params.items(), grads):
                    _sgd_step(param, grad, momenta, name, lrs[0] if name.startswith("fc.") else lrs[1],
                              SEMISUP_PROTOCOL["TRAIN.MOMENTUM"], SEMISUP_PROTOCOL["TRAIN.WEIGHT_DECAY"])
    schedules = {task: [[_cosine(SEMISUP_PROTOCOL["TRAIN.CLASSIFIER_LR"], epoch, epochs), _cosine(lr, epoch, epochs)]
                        for lr in sorted(SEMISUP_PROTOCOL["TRAIN.BACKBONE_LRS"]) for epoch in range(epochs)]
                 for task, epochs in SEMISUP_EPOCHS.items()}
    hyper = [[SEMISUP_PROTOCOL["TRAIN.MOMENTUM"], SEMISUP_PROTOCOL["TRAIN.WEIGHT_DECAY"], 0.0,
              float(SEMISUP_PROTOCOL["TRAIN.NESTEROV"])]] * 2
    return _SemisupRun(init, groups, hyper, _clone(params), _clone(dict(model.named_buffers())), lrs, schedules)


def _semisup_checks(arch: str, ours: _SemisupRun, theirs: _SemisupRun, against: str) -> list[Check]:
    """The whole network, lr groups and optimizer of the project's fine-tuning on ``arch`` vs ``against``."""
    steps = STEPS_PER_EPOCH * SEMISUP_RUN_EPOCHS
    sizes = f"{[len(group) for group in ours.groups]} vs {[len(group) for group in theirs.groups]} tensors"
    return [Check("semisup", f"{arch}: fc init", max_abs_diff(ours.init, theirs.init),
                  detail=f"N(0, 0.01) draw, bias 0, same seed, vs {against}"),
            Check("semisup", f"{arch}: lr groups [fc | backbone]", 0.0 if ours.groups == theirs.groups else math.inf,
                  detail=f"parameter names, {sizes}, vs {against}"),
            Check("semisup", f"{arch}: SGD settings", max_abs_diff(ours.hyper, theirs.hyper),
                  detail=f"momentum, weight decay, dampening, nesterov of both groups, vs {against}"),
            Check("semisup", f"{arch}: weights after {steps} steps", max_abs_diff(ours.params, theirs.params),
                  detail=f"every parameter, {SEMISUP_RUN_EPOCHS} epochs, backbone lr {SEMISUP_RUN_BACKBONE_LR:g}, "
                         f"vs {against}"),
            Check("semisup", f"{arch}: BN buffers after {steps} steps",
                  max_abs_diff(ours.buffers, theirs.buffers), detail=f"running mean / var / count, vs {against}"),
            Check("semisup", f"{arch}: lr [fc, backbone] in epoch {SEMISUP_RUN_EPOCHS - 1}",
                  max_abs_diff(ours.lrs, theirs.lrs), detail=f"vs {against}: {' / '.join(map(str, theirs.lrs))}")]


def _semisup_schedule_checks(ours: _SemisupRun, theirs: _SemisupRun, against: str) -> list[Check]:
    return [Check("semisup", f"cosine lr, {task} ({epochs} epochs x 5 lrs)",
                  max_abs_diff(ours.schedules[task], theirs.schedules[task]),
                  detail=f"both groups, shipped {task}.yaml vs {against}") for task, epochs in SEMISUP_EPOCHS.items()]


# ------------------------------------------------------------------------------------------------------ kNN


def reference_knn_scores(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, *, k: int,
                         num_classes: int, temperature: float) -> torch.Tensor:
    """Class scores ``(Q, C)`` of the weighted vote of Wu et al. 2018, written out in float64.

    Cosine similarity of L2-normalised features; each query's ``k`` most similar bank items vote for their
    label with weight ``exp(similarity / T)``; a class's score is the sum of its votes.
    """
    bank = bank.double() / bank.double().norm(dim=1, keepdim=True)
    queries = queries.double() / queries.double().norm(dim=1, keepdim=True)
    ranked = (queries @ bank.T).sort(dim=1, descending=True)
    nearest_sim, nearest = ranked.values[:, :k], ranked.indices[:, :k]
    votes = F.one_hot(bank_labels[nearest], num_classes).double() * torch.exp(nearest_sim / temperature)[..., None]
    return votes.sum(dim=1)


def _knn_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clustered random features; only queries whose votes have no near-tie at any k are kept."""
    generator = torch.Generator().manual_seed(SEED)
    centres = torch.randn(KNN_CLASSES, KNN_DIM, generator=generator, dtype=torch.float64)
    bank_labels = torch.arange(KNN_BANK) % KNN_CLASSES
    query_labels = torch.randint(KNN_CLASSES, (KNN_QUERIES,), generator=generator)
    bank = centres[bank_labels] + 1.5 * torch.randn(KNN_BANK, KNN_DIM, generator=generator, dtype=torch.float64)
    queries = centres[query_labels] + 1.5 * torch.randn(KNN_QUERIES, KNN_DIM, generator=generator,
                                                        dtype=torch.float64)
    unit_bank = bank / bank.norm(dim=1, keepdim=True)
    similarity = (queries / queries.norm(dim=1, keepdim=True)) @ unit_bank.T
    ordered = similarity.sort(dim=1, descending=True).values
    keep = torch.ones(KNN_QUERIES, dtype=torch.bool)
    for k in KNN_PROTOCOL["KNN.KS"]:
        keep &= ordered[:, k - 1] - ordered[:, k] > KNN_MARGIN
        scores = reference_knn_scores(bank, bank_labels, queries, k=k, num_classes=KNN_CLASSES,
                                      temperature=KNN_PROTOCOL["KNN.TEMPERATURE"])
        best = scores.sort(dim=1, descending=True).values[:, :6]
        keep &= ((best[:, :-1] - best[:, 1:]) / best[:, :1] > KNN_MARGIN).all(dim=1)
    return bank, bank_labels, queries[keep], query_labels[keep]


def _knn_checks() -> list[Check]:
    """The project's vote (synco.pretrain.knn, with the shipped knn.yaml's k and T) vs the reference above."""
    shipped = load_protocol(TASKS["knn"])
    bank, bank_labels, queries, labels = _knn_data()
    ks, temperature = shipped["KNN.KS"], shipped["KNN.TEMPERATURE"]
    checks, expected = [], {}
    for k, pinned_k in zip(ks, KNN_PROTOCOL["KNN.KS"]):
        ours = knn_vote.knn_scores(knn_vote.normalise(bank), bank_labels, knn_vote.normalise(queries), k=k,
                                   num_classes=KNN_CLASSES, temperature=temperature).topk(5, dim=1).indices
        theirs = reference_knn_scores(bank, bank_labels, queries, k=pinned_k, num_classes=KNN_CLASSES,
                                      temperature=KNN_PROTOCOL["KNN.TEMPERATURE"]).topk(5, dim=1).indices
        differ1 = int((ours[:, 0] != theirs[:, 0]).sum())
        differ5 = sum(set(a.tolist()) != set(b.tolist()) for a, b in zip(ours, theirs))
        checks += [Check("knn", f"top-1 predictions, k={pinned_k}", float(differ1),
                         detail=f"queries predicted differently, of {len(labels)}"),
                   Check("knn", f"top-5 predictions, k={pinned_k}", float(differ5),
                         detail=f"queries with another top-5 set, of {len(labels)}")]
        expected[f"top1_k{pinned_k}"] = 100.0 * float((theirs[:, 0] == labels).sum()) / len(labels)
        expected[f"top5_k{pinned_k}"] = 100.0 * float((theirs == labels[:, None]).any(dim=1).sum()) / len(labels)
    accuracy = knn_vote.knn_accuracy(bank, bank_labels, queries, labels, ks=ks, num_classes=KNN_CLASSES,
                                     temperature=temperature, chunk=64)
    shown = ", ".join(f"{name} {value:.2f}" for name, value in expected.items())
    checks.append(Check("knn", "knn_accuracy top-1 / top-5 (%)", max_abs_diff(accuracy, expected),
                        detail=f"reference: {shown}"))
    return checks


# -------------------------------------------------------------------------------------------------- entries


def _loops_compared(fixture: _Fixture, archs: Sequence[str],
                    linear_side: tuple[Callable[[_Fixture, str], _LinearRun], str] | None,
                    semisup_side: tuple[Callable[[_Fixture, str], _SemisupRun], str] | None) -> list[Check]:
    """The project's probe and fine-tuning on each of ``archs`` vs the other side ``(run, name)`` of each.

    A project run that stops with its own error (a NaN loss, under a mutation) is a failed check saying so.
    """
    checks: list[Check] = []
    plans = []
    if linear_side is not None:
        plans.append(("linear", _project_linear, *linear_side, _linear_checks, _linear_schedule_checks))
    if semisup_side is not None:
        plans.append(("semisup", _project_semisup, *semisup_side, _semisup_checks, _semisup_schedule_checks))
    for loop, project, other, against, compare, compare_schedules in plans:
        pair = None
        for arch in archs:
            try:
                ours = project(fixture, arch)
            except UserError as exc:
                checks.append(Check(loop, f"{arch}: the project's run", math.inf, detail=str(exc)))
                continue
            pair = ours, other(fixture, arch)
            checks += compare(arch, *pair, against)
        if pair is not None:
            checks += compare_schedules(*pair, against)
    return checks


def _named(checkout: Checkout, relpath: str) -> str:
    return f"{checkout.repo.split('/')[-1]} {relpath}@{checkout.commit[:7] if checkout.commit else 'checkout'}"


def _known(archs: Sequence[str]) -> tuple[str, ...]:
    unknown = [arch for arch in archs if arch not in ARCHS]
    if unknown or not archs:
        raise FidelityError(f"the evaluation checks run on {' and '.join(ARCHS)}; got {', '.join(archs) or 'none'}.")
    return tuple(archs)


def eval_checks(moco: Checkout | None, synco: Checkout | None, archs: Sequence[str] = ARCHS) -> list[Check]:
    """The project's evaluation loops vs the official code in the user's checkouts (None: skip that repository's
    checks), on each of ``archs``; the kNN vote, which neither repository has, vs the reference vote here."""
    archs = _known(archs)
    lincls = semi = None
    if moco is not None:
        lincls = _Official.load(moco, "main_lincls.py", MOCO_EDITS, MOCO_COMMIT).require(
            LINCLS_SETUP, ("parser", "train", "adjust_learning_rate"))
    if synco is not None:
        semi = _Official.load(synco, "main_semisup.py", SYNCO_EDITS, SYNCO_COMMIT).require(
            SEMISUP_SETUP, ("parser", "train"))
    checks: list[Check] = []
    with _float64_cpu():
        if lincls is not None or semi is not None:
            with _fixture() as fixture:
                checks += _loops_compared(
                    fixture, archs,
                    (functools.partial(_official_linear, lincls), _named(moco, "main_lincls.py")) if lincls else None,
                    (functools.partial(_official_semisup, semi), _named(synco, "main_semisup.py")) if semi else None)
        if lincls is not None:
            checks.append(_defaults_check("linear", lincls, "linear", {
                "lr": "TRAIN.LR", "schedule": "TRAIN.MILESTONES", "momentum": "TRAIN.MOMENTUM",
                "weight_decay": "TRAIN.WEIGHT_DECAY", "epochs": "TRAIN.EPOCHS"}))
        if semi is not None:
            checks.append(_defaults_check("semisup", semi, "semisup1", {
                "momentum": "TRAIN.MOMENTUM", "weight_decay": "TRAIN.WEIGHT_DECAY"}))
        checks += _knn_checks()
    return checks


def _defaults_check(loop: str, official: _Official, task: str, keys: dict[str, str]) -> Check:
    """The official argparse defaults the project's protocol says it takes, vs its shipped YAML."""
    defaults = official.args([str(Path(official.path).parent)])
    shipped = load_protocol(TASKS[task])
    diff = max(max_abs_diff(torch.tensor(getattr(defaults, name), dtype=torch.float64),
                            torch.tensor(shipped[key], dtype=torch.float64)) for name, key in keys.items())
    return Check(loop, f"argparse defaults = {task}.yaml", diff, detail=", ".join(f"--{name}" for name in keys))


def self_test_checks(loops: Collection[str] = LOOPS, archs: Sequence[str] = SELF_TEST_ARCHS) -> list[Check]:
    """The project's loops vs the in-script reference loops (no official code needed: CI runs this).

    ``loops`` narrows the run to some of ``LOOPS`` (a mutation test needs only the loop it breaks).
    """
    archs = _known(archs)
    unknown = sorted(set(loops) - set(LOOPS))
    if unknown:
        raise FidelityError(f"unknown loop {', '.join(unknown)}; the loops are {', '.join(LOOPS)}.")
    checks: list[Check] = []
    with _float64_cpu():
        if "linear" in loops or "semisup" in loops:
            with _fixture() as fixture:
                checks += _loops_compared(
                    fixture, archs,
                    (_reference_linear, "in-script reference") if "linear" in loops else None,
                    (_reference_semisup, "in-script reference") if "semisup" in loops else None)
        if "knn" in loops:
            checks += _knn_checks()
    return checks


# ------------------------------------------------------------------------------------------------ mutations


def _scaled_lr(module: types.ModuleType) -> contextlib.AbstractContextManager:
    return _patched(module, "lr_factor", lambda original: lambda protocol, epoch: original(protocol, epoch)
                    * (1 + 1e-6))


def _backbone_in_train_mode() -> contextlib.AbstractContextManager:
    def wrap(original):
        def epoch_inputs(job, backbone, views, epoch, order, batch):
            backbone.train()
            yield from original(job, backbone, views, epoch, order, batch)
        return epoch_inputs
    return _patched(linear, "_epoch_inputs", wrap)


def _finetune_with_frozen_bn() -> contextlib.AbstractContextManager:
    def wrap(original):
        def train_epoch(job, model, optimizer, dataset, epoch):
            frozen = Protocol({**job.protocol.values, "TRAIN.BN_MODE": "eval"})
            return original(dataclasses.replace(job, protocol=frozen), model, optimizer, dataset, epoch)
        return train_epoch
    return _patched(semisup, "_train_epoch", wrap)


def _vote_without_temperature() -> contextlib.AbstractContextManager:
    return _patched(knn_vote, "knn_scores", lambda original: lambda *args, **kwargs: original(
        *args, **{**kwargs, "temperature": 1.0}))


#: Breaks of the project's loops, applied by monkeypatching while active; each makes checks of its loop (the
#: name's first word) fail, in ``self_test_checks`` and ``eval_checks`` alike.
EVAL_MUTATIONS: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    "linear lr x(1+1e-6)": lambda: _scaled_lr(linear),
    "linear fc not frozen-BN (model.train())": _backbone_in_train_mode,
    "semisup lr x(1+1e-6)": lambda: _scaled_lr(semisup),
    "semisup BN frozen (model.eval())": _finetune_with_frozen_bn,
    "knn vote without temperature (T=1)": _vote_without_temperature,
}
