"""Detectron2 glue: the run's config, the trainer and evaluators, dataset registration.

Everything here imports detectron2; the rest of :mod:`transfer` (the task
registry, the run record, the converter) does not.
"""
