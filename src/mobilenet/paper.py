"""The published figures, written once, as data.

Sources: Howard et al. 2017 (arXiv 1704.04861) Tables 1-9, and the TF-slim checkpoint table
(``tensorflow/models`` ``research/slim/nets/mobilenet_v1.md``). Mult-adds are in millions,
parameters in millions, accuracies in percent (ImageNet top-1 unless named otherwise).
The registry attaches these figures to the named variants; :mod:`mobilenet.analysis` checks
our networks against them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figures:
    """One published row: cost and accuracy of a model as printed."""

    mult_adds_m: float
    params_m: float
    top1: float | None = None
    top5: float | None = None
    source: str = ""


# Table 1 as printed: (type / stride, input size). The stride of row 26 (the last depthwise
# layer) is printed "s2", an erratum; the input sizes are right and show it must be 1.
TABLE1_PRINTED: tuple[tuple[str, int, int], ...] = (
    ("conv", 2, 224),
    ("dw", 1, 112), ("pw", 1, 112),
    ("dw", 2, 112), ("pw", 1, 56),
    ("dw", 1, 56), ("pw", 1, 56),
    ("dw", 2, 56), ("pw", 1, 28),
    ("dw", 1, 28), ("pw", 1, 28),
    ("dw", 2, 28), ("pw", 1, 14),
    ("dw", 1, 14), ("pw", 1, 14),
    ("dw", 1, 14), ("pw", 1, 14),
    ("dw", 1, 14), ("pw", 1, 14),
    ("dw", 1, 14), ("pw", 1, 14),
    ("dw", 1, 14), ("pw", 1, 14),
    ("dw", 2, 14), ("pw", 1, 7),
    ("dw", 2, 7), ("pw", 1, 7),
    ("fc", 1, 1),
)  # fmt: skip
TABLE1_ERRATUM_ROW = 25  # zero-based index of the misprinted "Conv dw / s2"

# Table 2: share of mult-adds and of parameters (percent) by layer type, 1.0 MobileNet-224.
TABLE2: dict[str, tuple[float, float]] = {
    "pointwise": (94.86, 74.59),
    "depthwise": (3.06, 1.06),
    "stem": (1.19, 0.02),
    "fc": (0.18, 24.33),
}

# Table 3: one layer, DK = 3, M = N = 512, DF = 14 (rho = 0.714 makes it 10x10).
TABLE3: dict[str, Figures] = {
    "standard": Figures(462, 2.36),
    "separable": Figures(52.3, 0.27),
    "alpha_0.75": Figures(29.6, 0.15),
    "rho_0.714": Figures(15.1, 0.15),
}
TABLE3_LAYER = {"kernel": 3, "channels": 512, "size": 14, "alpha": 0.75, "rho_size": 10}

# Tables 4-9 (ImageNet), keyed by our registry names.
TABLE4 = {
    "mobilenet_v1_conv": Figures(4866, 29.3, 71.7, source="Table 4"),
    "mobilenet_v1_100_224": Figures(569, 4.2, 70.6, source="Table 4"),
}
TABLE5 = {
    "mobilenet_v1_075_224": Figures(325, 2.6, 68.4, source="Table 5"),
    "mobilenet_v1_shallow": Figures(307, 2.9, 65.3, source="Table 5"),
}
TABLE6 = {
    "mobilenet_v1_100_224": Figures(569, 4.2, 70.6, source="Table 6"),
    "mobilenet_v1_075_224": Figures(325, 2.6, 68.4, source="Table 6"),
    "mobilenet_v1_050_224": Figures(149, 1.3, 63.7, source="Table 6"),
    "mobilenet_v1_025_224": Figures(41, 0.5, 50.6, source="Table 6"),
}
TABLE7 = {
    "mobilenet_v1_100_224": Figures(569, 4.2, 70.6, source="Table 7"),
    "mobilenet_v1_100_192": Figures(418, 4.2, 69.1, source="Table 7"),
    "mobilenet_v1_100_160": Figures(290, 4.2, 67.2, source="Table 7"),
    "mobilenet_v1_100_128": Figures(186, 4.2, 64.4, source="Table 7"),
}
TABLE8 = {"mobilenet_v1_100_224": Figures(569, 4.2, 70.6, source="Table 8")}
TABLE9 = {"mobilenet_v1_050_160": Figures(76, 1.32, 60.2, source="Table 9")}
PAPER_TABLES: dict[str, dict[str, Figures]] = {
    "Table 4": TABLE4,
    "Table 5": TABLE5,
    "Table 6": TABLE6,
    "Table 7": TABLE7,
    "Table 8": TABLE8,
    "Table 9": TABLE9,
}

# TF-slim's checkpoint table: (alpha, resolution) -> float model figures (top-1, top-5).
TFSLIM: dict[tuple[float, int], Figures] = {
    (1.0, 224): Figures(569, 4.24, 70.9, 89.9),
    (1.0, 192): Figures(418, 4.24, 70.0, 89.2),
    (1.0, 160): Figures(291, 4.24, 68.0, 87.7),
    (1.0, 128): Figures(186, 4.24, 65.2, 85.8),
    (0.75, 224): Figures(317, 2.59, 68.4, 88.2),
    (0.75, 192): Figures(233, 2.59, 67.2, 87.3),
    (0.75, 160): Figures(162, 2.59, 65.3, 86.0),
    (0.75, 128): Figures(104, 2.59, 62.1, 83.9),
    (0.5, 224): Figures(150, 1.34, 63.3, 84.9),
    (0.5, 192): Figures(110, 1.34, 61.7, 83.6),
    (0.5, 160): Figures(77, 1.34, 59.1, 81.9),
    (0.5, 128): Figures(49, 1.34, 56.3, 79.4),
    (0.25, 224): Figures(41, 0.47, 49.8, 74.2),
    (0.25, 192): Figures(34, 0.47, 47.7, 72.3),
    (0.25, 160): Figures(21, 0.47, 45.5, 70.3),
    (0.25, 128): Figures(14, 0.47, 41.5, 66.3),
}


@dataclass(frozen=True)
class Erratum:
    """A printed figure that its own source's arithmetic contradicts, and the figure it implies."""

    corrected: float
    reason: str


_TFSLIM_SCALED = "TF-slim scaled its (already wrong) 317M for 0.75-224 by rho^2; the network computes this"

# (table, item, quantity) -> erratum. Each is checked against ``corrected`` instead of the print.
ERRATA: dict[tuple[str, str, str], Erratum] = {
    ("Table 2", "stem", "mult_adds_share"): Erratum(
        1.90, "the printed shares sum to 99.29%; the 3x3 stem is 10.8M of 569M, 100 - 94.86 - 3.06 - 0.18 = 1.90%"
    ),
    ("Table 9", "mobilenet_v1_050_160", "mult_adds_m"): Erratum(
        76.5, "76M is Table 6's 149M scaled by (160/224)^2; the network computes 76.5M (TF-slim prints 77M)"
    ),
    ("TF-slim", "mobilenet_v1_075_224", "mult_adds_m"): Erratum(325, "the paper's Table 6 prints 325M"),
    ("TF-slim", "mobilenet_v1_075_192", "mult_adds_m"): Erratum(239, _TFSLIM_SCALED),
    ("TF-slim", "mobilenet_v1_075_160", "mult_adds_m"): Erratum(166, _TFSLIM_SCALED),
    ("TF-slim", "mobilenet_v1_075_128", "mult_adds_m"): Erratum(107, _TFSLIM_SCALED),
    ("TF-slim", "mobilenet_v1_025_192", "mult_adds_m"): Erratum(
        30, "41M (0.25-224) scaled by (192/224)^2 is 30M, and the network computes 30.2M"
    ),
}
WIDTHS = (1.0, 0.75, 0.5, 0.25)
RESOLUTIONS = (224, 192, 160, 128)
