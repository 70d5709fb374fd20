"""Detection transfer: checkpoint conversion (:mod:`transfer.convert`) and Detectron2
fine-tuning under the MoCo R50-C4 protocol (:func:`transfer.run.run_transfer`)."""
