"""The bottom layer: errors, atomic writes, digests, shipped resources and the optional W&B run.

Everything else in the project may import this package; it imports nothing
of the project, so it can never be part of an import cycle.
"""
