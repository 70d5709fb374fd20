"""The toy world: a deterministic procedural scene generator that stands in for
ImageNet, PASCAL VOC and COCO in tests and in the CPU demo."""

from synco.toyworld.generate import MANIFEST, ToyWorldSpec, generate_toy_world, read_manifest
from synco.toyworld.scene import CLASS_NAMES, make_scene

DEFAULT_ROOT = "runs/toy-world"

__all__ = ["CLASS_NAMES", "DEFAULT_ROOT", "MANIFEST", "ToyWorldSpec", "generate_toy_world", "make_scene",
           "read_manifest"]
