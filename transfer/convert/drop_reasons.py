"""Why a tensor outside the backbone is dropped, so the report can say it.

Every tensor a conversion does not keep is listed in the report, grouped by
the name prefix that explains it ("module.encoder_k.* (320 tensors): momentum
encoder"). A reason is chosen by the first name component that matches one of
the patterns below; a tensor nothing matches is still dropped (it is outside
the backbone prefix, and the 100%-coverage check guards the backbone itself)
but its group says "outside the backbone" so a surprise is visible.
"""

from __future__ import annotations

import re

from transfer.convert.report import DroppedGroup

# (component pattern, reason); matched with re.fullmatch, first match wins.
_REASONS: tuple[tuple[str, str], ...] = (
    (r"encoder_k|momentum_encoder|momentum_backbone|backbone_momentum|target_net|target_backbone"
     r"|teacher_backbone|model_ema|ema_model|encoder_ema|ema",
     "momentum/EMA encoder (a copy of the backbone; the online one is kept)"),
    (r"queue\w*|memory_bank|bank|bank_ptr", "negative-sample queue / memory bank"),
    (r"predictor|prediction_head|prediction_head_momentum", "predictor head"),
    (r"prototypes\d*", "clustering prototypes"),
    (r"bn", "BatchNorm of the projector output (Barlow Twins' loss normalisation), not the ResNet"),
    (r"top_layer|classifier|linear|clf|fc\d*|heads?", "classifier or projection head"),
    (r"projection_head\w*|projector|momentum_projector|neck|mlp|last_layer|projection\w*",
     "projection head"),
    (r"proposal_generator|roi_heads|box_predictor|sem_seg_head|fpn_\w+|top_block",
     "detection heads (FPN/RPN/ROI), not the ResNet"),
    (r"data_preprocessor|pixel_mean|pixel_std|normalize", "input normalisation buffers"),
    (r"criterion|loss\w*|center", "loss state"),
)
_COMPILED = tuple((re.compile(pattern), reason) for pattern, reason in _REASONS)
_WRAPPERS = frozenset({"module", "model", "_orig_mod"})
OUTSIDE = "outside the backbone prefix (not recognised; check it is not the weights you wanted)"
BATCH_COUNTERS = "BatchNorm step counters (bookkeeping; detectron2 does not use them)"


def explain(key: str) -> tuple[str, str]:
    """(group pattern, reason) for a tensor that is not part of the backbone."""
    parts = key.split(".")
    for index, part in enumerate(parts):
        for pattern, reason in _COMPILED:
            if pattern.fullmatch(part):
                return _group(parts, index), reason
    for index, part in enumerate(parts):
        if part not in _WRAPPERS:
            return _group(parts, index), OUTSIDE
    return key, OUTSIDE


def _group(parts: list[str], index: int) -> str:
    head = ".".join(parts[: index + 1])
    return head if index == len(parts) - 1 else f"{head}.*"


class DropLog:
    """Collects dropped tensor names into groups, in order of first appearance."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], int] = {}

    def add(self, group: str, reason: str, count: int = 1) -> None:
        self._groups[(group, reason)] = self._groups.get((group, reason), 0) + count

    def groups(self) -> list[DroppedGroup]:
        return [DroppedGroup(group, count, reason) for (group, reason), count in self._groups.items()]
