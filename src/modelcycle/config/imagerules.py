"""What modelcycle.yaml may say about image columns: the rules' checks, Pillow's modes, a default.

Kept beside :mod:`modelcycle.config.models` (whose ``RuleConfig`` and ``DataConfig`` hold the
fields) so that module stays about the sections; nothing here imports Pillow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: Pillow's image modes (``PIL.Image.MODES`` and the 16-bit integer ones), for ``rules.<column>.modes``.
IMAGE_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB",
               "HSV", "I", "F", "I;16", "I;16L", "I;16B", "I;16N")

#: The image rules of ``RuleConfig``: valid for columns of type image only.
IMAGE_RULES = ("size", "min_size", "max_size", "modes")

#: The class imbalance limit of a workspace with an image column that sets no ``data.max_class_ratio``.
DEFAULT_IMAGE_CLASS_RATIO = 10.0


def check_sizes(sizes: Mapping[str, Sequence[int] | None]) -> None:
    """ValueError for a size that is not two whole numbers of at least 1 pixel."""
    for key, size in sizes.items():
        if size is not None and min(size) < 1:
            raise ValueError(f"`{key}` is [width, height] in pixels, both at least 1 (got {list(size)})")


def check_modes(modes: Sequence[str] | None) -> None:
    """ValueError naming the modes Pillow does not know (a misspelt ``rgb`` say)."""
    unknown = [m for m in modes or [] if m not in IMAGE_MODES]
    if unknown:
        raise ValueError(f"unknown image mode(s) {', '.join(map(repr, unknown))} in `modes` "
                         f"(Pillow's modes: {', '.join(IMAGE_MODES)})")


def check_image_columns(columns: Mapping[str, str], given: Mapping[str, list[str]]) -> None:
    """ValueError when a column that is not of type image has image rules (``given``: column ->
    the image rules it sets)."""
    for name, rules in given.items():
        if rules and columns.get(name) != "image":
            raise ValueError(f"rules.{name}: {', '.join(rules)} apply to image columns only, and "
                             f"'{name}' has type {columns.get(name)}")


def class_ratio_limit(max_class_ratio: float | None, columns: Mapping[str, str]) -> float | None:
    """The class imbalance limit in force: ``max_class_ratio``, else 10 when a column is an image."""
    if max_class_ratio is not None:
        return max_class_ratio
    return DEFAULT_IMAGE_CLASS_RATIO if "image" in columns.values() else None
