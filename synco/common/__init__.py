"""The bottom layer: errors, atomic writes, digests and shipped resources.

Everything else in the project may import this package; it imports nothing
of the project, so it can never be part of an import cycle.
"""
