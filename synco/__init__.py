"""synco-bench: contrastive pretraining with synthetic hard negatives, and its detection transfer.

Packages:
  synco/      pretraining (MoCo v2, MoCHI, SynCo), the toy world, the CLI
  transfer/   checkpoint conversion and Detectron2 fine-tuning
  results/    run-record aggregation into tables and plots
"""

__version__ = "0.1.0"
