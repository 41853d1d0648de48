"""Normalisation and evaluation constants shared by every layer (a leaf: it imports nothing).

ImageNet's per-channel mean and standard deviation of ``[0, 1]`` RGB pixels (torchvision's and
timm's ``IMAGENET_DEFAULT_MEAN``/``STD``), the evaluation crop every published MobileNet was
measured with (224 out of a shorter side of 256) and the paper's full input size.
"""

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
CROP_FRACTION = 0.875
"""Evaluation crops R out of a shorter side of R / 0.875 (224 out of 256)."""
DEFAULT_INPUT_SIZE = 224
"""The paper's full resolution (Section 4.3: rho = 1)."""
