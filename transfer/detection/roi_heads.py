"""``Res5ROIHeadsExtraNorm``: detectron2's C4 ROI heads with a norm layer after res5.

Why: in the MoCo detection protocol every layer of the ResNet is fine-tuned
with synchronised BatchNorm, and the res5 stage that C4 runs per region ends
in a residual sum with no normalisation after it. The protocol appends one
more norm layer (of ``MODEL.RESNETS.NORM``) to res5 so the region features fed
to the box and mask predictors are normalised like everything before them.
Without it, the numbers are not comparable with MoCo v2 / MoCHI / SynCo.

Importing this module registers the class in detectron2's
``ROI_HEADS_REGISTRY`` (``MODEL.ROI_HEADS.NAME: "Res5ROIHeadsExtraNorm"``);
:mod:`transfer.detection.engine` imports it before any model is built.
"""

from __future__ import annotations

from detectron2.config import CfgNode
from detectron2.layers import get_norm
from detectron2.modeling import ROI_HEADS_REGISTRY
from detectron2.modeling.roi_heads import Res5ROIHeads
from torch import nn

__all__ = ["Res5ROIHeadsExtraNorm"]


@ROI_HEADS_REGISTRY.register()
class Res5ROIHeadsExtraNorm(Res5ROIHeads):
    """Res5ROIHeads whose ``res5`` ends with ``get_norm(MODEL.RESNETS.NORM, out_channels)``.

    Only the construction of res5 changes; pooling, the box predictor and the
    mask head (which reads res5's output) are detectron2's own.
    """

    @classmethod
    def _build_res5_block(cls, cfg: CfgNode) -> tuple[nn.Sequential, int]:
        res5, out_channels = super()._build_res5_block(cfg)
        norm = get_norm(cfg.MODEL.RESNETS.NORM, out_channels)
        if norm is None:
            # NORM "" means "no normalisation" for the whole network; an extra
            # identity layer would only add a confusing state-dict entry.
            return res5, out_channels
        res5.add_module("norm", norm)
        return res5, out_channels
