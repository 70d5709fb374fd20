"""Classification evaluations (kNN, linear probe, semi-supervised fine-tuning) as transfer tasks.

Public entry point: :func:`transfer.classification.run.run_classification`
(imported from its module: this package's ``__init__`` stays torch-free so
the torch-free :mod:`protocol` and :mod:`errors` can be read cheaply). No
module here imports detectron2.
"""
