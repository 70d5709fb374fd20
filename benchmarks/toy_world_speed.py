"""Toy-world generation speed on one core: render only, and render + JPEG encode.

Target (foundation issue): at least 200 images/s on one core at 128 px.

    python benchmarks/toy_world_speed.py [--size 128] [--count 500]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import time

import torch  # noqa: F401  (import first so its thread settings do not skew the loop)
from PIL import Image

from synco.toyworld import make_scene


def images_per_second(count: int, size: int, annotate: bool, encode: bool) -> float:
    start = time.perf_counter()
    for i in range(count):
        image, _ = make_scene([0, 1, i], size, size, annotate=annotate)
        if encode:
            Image.fromarray(image).save(io.BytesIO(), format="JPEG", quality=92)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (pinned to 1)")
    images_per_second(20, args.size, True, True)  # warm caches
    for annotate, encode, label in [(False, False, "pretraining scene, render"),
                                    (True, False, "annotated scene, render"),
                                    (True, True, "annotated scene, render + JPEG")]:
        rate = images_per_second(args.count, args.size, annotate, encode)
        print(f"{label:34s} {rate:7.0f} images/s at {args.size}px  ({rate / 200:.1f}x the 200/s target)")


if __name__ == "__main__":
    main()
