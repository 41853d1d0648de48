"""Tags for published weights: ``timm``, ``hf``, ``keras`` and ``torchvision``, optionally ``TAG:VARIANT``.

- ``timm`` / ``timm:mobilenetv1_100h`` / ``timm:mobilenetv3_large_100.miil_in21k_ft_in1k``: timm's
  weights from the Hugging Face Hub, via huggingface_hub; without ``.TAG``, the tag timm itself
  loads by default for that name (:data:`TIMM_DEFAULT_TAGS`).
- ``hf`` / ``hf:google/mobilenet_v1_0.75_192``: a transformers checkpoint folder, via
  huggingface_hub (default ``google/mobilenet_v1_1.0_224``).
- ``keras`` / ``keras:0.75_192`` / ``keras:0.75_192_no_top``: Keras's published ``.h5`` files,
  downloaded once into ``$MOBILENET_CACHE`` (default ``~/.cache/mobilenet``); V2 as
  ``keras:v2_1.4_224`` (alpha 0.35, 0.5, 0.75, 1.0, 1.3, 1.4; size 96, 128, 160, 192, 224), V3 as
  ``keras:v3_large_0.75``, ``keras:v3_small_minimalistic_1.0`` (alpha 1.0 or 0.75; 224), each
  with ``_no_top`` for the file without classifier.
- ``torchvision`` / ``torchvision:mobilenet_v3_small`` / ``torchvision:mobilenet_v2.IMAGENET1K_V1``:
  torchvision's ImageNet weights (``mobilenet_v2``, ``mobilenet_v3_large``, ``mobilenet_v3_small``;
  by default torchvision's ``DEFAULT`` weights of the model) from download.pytorch.org, cached as
  Keras's are.

Offline, each raises a :class:`WeightsError` naming the file to fetch and how to pass it.
"""

from __future__ import annotations

import shutil
import urllib.request
from collections.abc import Callable
from pathlib import Path

from mobilenet.data.cache import cache_dir
from mobilenet.errors import WeightsError
from mobilenet.fileio import atomic_write
from mobilenet.weights.formats import one_line, optional_import

TAGS = ("timm", "hf", "keras", "torchvision")
DEFAULT_VARIANTS = {
    "timm": "mobilenetv1_100",
    "hf": "google/mobilenet_v1_1.0_224",
    "keras": "1.0_224",
    "torchvision": "mobilenet_v2",
}
TIMM_DEFAULT_TAGS = (  # (name prefix, timm's default pretrained tag), the first that matches
    ("mobilenetv1_", "ra4_e3600_r224_in1k"),
    ("mobilenetv2_050", "lamb_in1k"),
    ("mobilenetv2_", "ra_in1k"),
    ("mobilenetv3_small_", "lamb_in1k"),
    ("mobilenetv3_large_100", "ra_in1k"),
    ("tf_mobilenetv3_", "in1k"),
)
HF_FILES = ("config.json", "preprocessor_config.json", "model.safetensors")
KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
KERAS_ALPHAS = {"1.0": "1_0", "0.75": "7_5", "0.5": "5_0", "0.50": "5_0", "0.25": "2_5"}
KERAS_SIZES = ("224", "192", "160", "128")
KERAS_V2_ALPHAS = ("0.35", "0.5", "0.75", "1.0", "1.3", "1.4")
KERAS_V2_SIZES = ("96", "128", "160", "192", "224")
KERAS_V3_MODELS = ("large", "small", "large_minimalistic", "small_minimalistic")
KERAS_V3_ALPHAS = ("1.0", "0.75")
NO_TOP = "_no_top"
TORCHVISION_URL = "https://download.pytorch.org/models/"
TORCHVISION_FILES: dict[str, dict[str, str]] = {  # torchvision's weights enums; the first is the model's DEFAULT
    "mobilenet_v2": {"IMAGENET1K_V2": "mobilenet_v2-7ebf99e0.pth", "IMAGENET1K_V1": "mobilenet_v2-b0353104.pth"},
    "mobilenet_v3_large": {
        "IMAGENET1K_V2": "mobilenet_v3_large-5c1a4163.pth",
        "IMAGENET1K_V1": "mobilenet_v3_large-8738ca79.pth",
    },
    "mobilenet_v3_small": {"IMAGENET1K_V1": "mobilenet_v3_small-047dcff4.pth"},
}


def is_tag(source: str) -> bool:
    """Whether ``source`` names published weights (``timm``, ``hf:...``) rather than a path."""
    return source.partition(":")[0] in TAGS


def resolve(tag: str) -> Path:
    """The local file or folder of a tag's weights, downloaded if needed."""
    kind, _, variant = tag.partition(":")
    variant = variant or DEFAULT_VARIANTS[kind]
    if kind == "timm":
        name = variant if "." in variant else f"{variant}.{_timm_tag(variant)}"
        url = f"https://huggingface.co/timm/{name}/resolve/main/model.safetensors"
        return _fetch(tag, url, "the file's path", lambda: _hub_file(f"timm/{name}", "model.safetensors"))
    if kind == "hf":
        url = f"https://huggingface.co/{variant}/tree/main ({', '.join(HF_FILES)})"
        return _fetch(tag, url, "the path of a folder holding them", lambda: _hub_folder(variant))
    filename = _torchvision_filename(variant) if kind == "torchvision" else _keras_filename(variant)
    url = (TORCHVISION_URL if kind == "torchvision" else KERAS_URL) + filename
    return _fetch(tag, url, "the file's path", lambda: _download(url, Path(filename).name))


def _timm_tag(name: str) -> str:
    """timm's default pretrained tag for a MobileNet ``name`` (a one-line error for names it has none for)."""
    for prefix, tag in TIMM_DEFAULT_TAGS:
        if name.startswith(prefix):
            return tag
    known = ", ".join(prefix + "*" for prefix, _ in TIMM_DEFAULT_TAGS)
    raise WeightsError(f"no default timm tag for {name!r} (known: {known}): name one, as in timm:{name}.TAG")


def _torchvision_filename(variant: str) -> str:
    """``mobilenet_v2-7ebf99e0.pth`` for ``mobilenet_v2`` (its DEFAULT) or ``mobilenet_v2.IMAGENET1K_V2``."""
    model, _, weights = variant.partition(".")
    files = TORCHVISION_FILES.get(model, {})
    if not files or (weights and weights not in files):
        known = ", ".join(f"{name}[.{'|'.join(enum)}]" for name, enum in TORCHVISION_FILES.items())
        raise WeightsError(f"unknown torchvision variant {variant!r}: expected one of {known}")
    return files[weights] if weights else next(iter(files.values()))


def _fetch(tag: str, url: str, what: str, download: Callable[[], Path]) -> Path:
    """Run ``download``; offline, an error that says which file to get and how to pass it."""
    try:
        return download()
    except OSError as err:  # no network (huggingface_hub and urllib errors are OSErrors)
        raise WeightsError(
            f"cannot download the weights for {tag!r} ({one_line(err)[:120]}): on a machine with internet get "
            f"{url} and pass {what} instead of {tag!r}"
        ) from err


def _hub_file(repo: str, filename: str) -> Path:
    return Path(optional_import("huggingface_hub").hf_hub_download(repo, filename))


def _hub_folder(repo: str) -> Path:
    return Path(optional_import("huggingface_hub").snapshot_download(repo, allow_patterns=list(HF_FILES)))


def _keras_filename(variant: str) -> str:
    """Keras's file name for a variant: ``mobilenet_7_5_192_tf.h5`` for ``0.75_192`` (``..._tf_no_top.h5`` for
    ``0.75_192_no_top``), the ``mobilenet_v2/`` and ``mobilenet_v3/`` files for ``v2_...`` and ``v3_...``."""
    if variant.startswith(("v2_", "v3_")):
        return _keras_v2_v3_filename(variant)
    alpha, _, rest = variant.partition("_")
    size, _, top = rest.partition("_")
    if alpha not in KERAS_ALPHAS or size not in KERAS_SIZES or top not in ("", "no_top"):
        raise WeightsError(
            f"unknown Keras variant {variant!r}: expected ALPHA_SIZE[_no_top] with ALPHA one of "
            f"{', '.join(KERAS_ALPHAS)} and SIZE one of {', '.join(KERAS_SIZES)}, e.g. keras:0.75_192"
        )
    return f"mobilenet/mobilenet_{KERAS_ALPHAS[alpha]}_{size}_tf{'_no_top' if top else ''}.h5"


def _keras_v2_v3_filename(variant: str) -> str:
    """``mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.4_224.h5`` for ``v2_1.4_224``,
    ``mobilenet_v3/weights_mobilenet_v3_large_224_0.75_float.h5`` for ``v3_large_0.75`` (``_no_top``: the
    files without classifier; V3's are Keras's ``_no_top_v2``)."""
    version, _, rest = variant.partition("_")
    top = not rest.endswith(NO_TOP)
    rest = rest if top else rest[: -len(NO_TOP)]
    if version == "v2":
        alpha, _, size = rest.partition("_")
        if alpha in KERAS_V2_ALPHAS and size in KERAS_V2_SIZES:
            suffix = "" if top else NO_TOP
            return f"mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{size}{suffix}.h5"
    else:
        model, _, alpha = rest.rpartition("_")
        if model in KERAS_V3_MODELS and alpha in KERAS_V3_ALPHAS and not (model.endswith("istic") and alpha != "1.0"):
            return f"mobilenet_v3/weights_mobilenet_v3_{model}_224_{alpha}_float{'' if top else '_no_top_v2'}.h5"
    raise WeightsError(
        f"unknown Keras variant {variant!r}: expected v2_ALPHA_SIZE (ALPHA one of {', '.join(KERAS_V2_ALPHAS)}, SIZE "
        f"one of {', '.join(KERAS_V2_SIZES)}) or v3_MODEL_ALPHA (MODEL one of {', '.join(KERAS_V3_MODELS)}, ALPHA "
        f"1.0 or 0.75; minimalistic 1.0 only), each optionally ending in _no_top"
    )


def _download(url: str, filename: str) -> Path:
    """``url`` into the cache (once), written atomically."""
    target = cache_dir() / filename
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)

    def fetch(tmp: Path) -> None:
        with urllib.request.urlopen(url, timeout=60) as response, tmp.open("wb") as out:
            shutil.copyfileobj(response, out)

    atomic_write(target, fetch)
    return target
