"""Annotation formats for toy scenes: PASCAL VOC XML and COCO instances JSON.

Both are written so that detectron2's own loaders (``register_pascal_voc``,
``register_coco_instances``) and evaluators read them unchanged.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

from synco.toyworld.scene import CLASS_NAMES, Scene, ToyObject


def voc_box(obj: ToyObject) -> tuple[int, int, int, int]:
    """VOC's 1-based inclusive pixel box of the visible part.

    A continuous extent [x0, x1) covers pixels floor(x0) .. ceil(x1)-1
    (0-based); in VOC's 1-based convention that is floor(x0)+1 .. ceil(x1).
    detectron2's loader subtracts 1 from xmin/ymin, giving back
    [floor(x0), floor(y0), ceil(x1), ceil(y1)] in absolute XYXY.
    """
    x0, y0, x1, y1 = obj.bbox()
    return math.floor(x0) + 1, math.floor(y0) + 1, math.ceil(x1), math.ceil(y1)


def voc_xml(file_id: str, scene: Scene) -> str:
    """One ``Annotations/<id>.xml`` document."""
    lines = [
        "<annotation>",
        "  <folder>VOC2007</folder>",
        f"  <filename>{escape(file_id)}.jpg</filename>",
        "  <source><database>synco-bench toy world</database></source>",
        f"  <size><width>{scene.width}</width><height>{scene.height}</height><depth>3</depth></size>",
        "  <segmented>0</segmented>",
    ]
    for obj in scene.objects:
        xmin, ymin, xmax, ymax = voc_box(obj)
        lines += [
            "  <object>",
            f"    <name>{obj.name}</name>",
            "    <pose>Unspecified</pose>",
            f"    <truncated>{int(obj.truncated)}</truncated>",
            f"    <difficult>{int(obj.difficult)}</difficult>",
            f"    <bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>",
            "  </object>",
        ]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def coco_categories() -> list[dict]:
    return [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CLASS_NAMES)]


def coco_image(image_id: int, file_name: str, scene: Scene) -> dict:
    return {"id": image_id, "file_name": file_name, "width": scene.width, "height": scene.height}


def coco_annotations(image_id: int, scene: Scene, first_id: int) -> list[dict]:
    """Instance annotations with polygon ``segmentation`` of the visible parts."""
    out = []
    for obj in scene.objects:
        parts = obj.visible_parts()
        if not parts:
            continue
        x0, y0, x1, y1 = obj.bbox()
        out.append({
            "id": first_id + len(out),
            "image_id": image_id,
            "category_id": obj.category + 1,
            "segmentation": [[round(float(v), 2) for v in ring.reshape(-1)] for ring in parts],
            "area": round(float(obj.visible.area), 2),
            "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
            "iscrowd": 0,
        })
    return out
