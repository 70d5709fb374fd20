"""``FasterCOCOEvaluator``: detectron2's COCOEvaluator scoring with faster-coco-eval's COCOeval.

Why: the official pycocotools COCOeval spends minutes per COCO val
evaluation in Python, and detectron2's own fast C++ COCOeval is part of the
compiled ``_C`` ops this installation may lack. faster-coco-eval
(``pip install 'synco-bench[fast-coco]'``) ships a C++ ``COCOeval_faster``
with pycocotools' interface; the test suite checks it gives the official
numbers (to 1e-4) on the same predictions.

How it is swapped in: ``COCOEvaluator._eval_predictions`` picks the COCOeval
class at call time from its module's ``COCOeval_opt`` name when
``_use_fast_impl`` is set. This subclass sets that name to ``COCOeval_faster``
only for the duration of its own evaluation, under a lock, and restores it;
everything else (category-id unmapping, mask results without boxes, maxDets,
per-category AP tables) stays detectron2's code, so the two evaluators can
differ only in the AP arithmetic itself.
"""

from __future__ import annotations

import threading
from typing import Any

from detectron2.evaluation import COCOEvaluator
from detectron2.evaluation import coco_evaluation as _d2_coco

from synco.common.errors import UserError

_SWAP_LOCK = threading.Lock()
INSTALL_HINT = "pip install 'synco-bench[fast-coco]' (or: pip install faster-coco-eval)"


def faster_cocoeval_class() -> type:
    """faster-coco-eval's ``COCOeval_faster``, or a UserError saying how to install it."""
    try:
        from faster_coco_eval import COCOeval_faster  # noqa: PLC0415 - optional extra [fast-coco]: may be absent
    except ImportError as exc:
        raise UserError(f"--evaluator faster-coco-eval needs the faster-coco-eval package ({exc}); "
                        f"{INSTALL_HINT}", exit_code=3) from None
    return COCOeval_faster


def faster_coco_eval_version() -> str | None:
    try:
        import faster_coco_eval  # noqa: PLC0415 - optional extra [fast-coco]: may be absent
    except ImportError:
        return None
    return str(getattr(faster_coco_eval, "__version__", "unknown"))


class FasterCOCOEvaluator(COCOEvaluator):
    """COCOEvaluator whose box/mask AP is computed by faster-coco-eval (same arguments as COCOEvaluator)."""

    def __init__(self, dataset_name: str, tasks: tuple[str, ...] | None = None, distributed: bool = True,
                 output_dir: str | None = None, **kwargs: Any) -> None:
        self._cocoeval_class = faster_cocoeval_class()  # fail before any work, with the install hint
        kwargs["use_fast_impl"] = False  # detectron2's own C++ COCOeval is never the one used here
        super().__init__(dataset_name, tasks=tasks, distributed=distributed, output_dir=output_dir, **kwargs)

    def _eval_predictions(self, predictions: list[dict], img_ids: list[int] | None = None) -> None:
        if not hasattr(_d2_coco, "COCOeval_opt"):  # pragma: no cover - a detectron2 refactor
            raise RuntimeError("detectron2.evaluation.coco_evaluation has no COCOeval_opt; "
                               "FasterCOCOEvaluator needs updating for this detectron2")
        with _SWAP_LOCK:
            original = _d2_coco.COCOeval_opt
            _d2_coco.COCOeval_opt = self._cocoeval_class
            self._use_fast_impl = True
            try:
                super()._eval_predictions(predictions, img_ids=img_ids)
            finally:
                self._use_fast_impl = False
                _d2_coco.COCOeval_opt = original
