"""Create an OpenCLIP model from what the user named: a model and tag, a config file, local weights.

Where the weights come from, in order: the `--weights` file; a copy already in the model hub's
cache; a download from the hub with a progress bar. We probe the hub ourselves before asking
huggingface_hub for anything, because offline it retries for most of a minute before failing;
the user instead gets one short message that names the model, the cache and `--weights`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported where a model is built: a CPU search runs without it
    import torch

# Where a model comes from is named there (torch-free); here it is built. Re-exported for callers.
from clipphotos.model_choices import ModelSpec, ModelUnavailable, resolve_pretrained  # noqa: E402
from clipphotos.private import write_privately  # noqa: E402

BUNDLED_DIR = Path(__file__).resolve().parent / "models"
# The toy model that ships inside the package: enough for the demo and the tests.
SHAPES_CONFIG = BUNDLED_DIR / "shapes-clip" / "config.json"
SHAPES_WEIGHTS = BUNDLED_DIR / "shapes-clip" / "shapes-clip.safetensors"

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
TORCH_PRECISIONS = ("fp32", "bf16", "fp16")   # int8 runs only through ONNX Runtime (onnx_runtime.py)
PRECISION_ENV = "CLIPPHOTOS_PRECISION"
# Below this cosine to fp32, half-precision weights are judged to change what the model sees.
HALF_PRECISION_AGREEMENT = 0.999
# Texts every lower precision is checked on against fp32 (with PROBE pictures): short and long,
# lower case and not, with and without CLIP's "a photo of" prompt.
PROBE_TEXTS = ("a photo of a cat", "a red circle on a grey background", "two people walking on a beach at sunset",
               "a picture of a purple star.", "receipt", "a snowy mountain road seen from a car window at night")

_registry_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    """DTYPES (precision name -> torch dtype), made on first use so that importing this module
    does not import torch."""
    if name == "DTYPES":
        import torch
        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    raise AttributeError(name)


@dataclass
class LoadedModel:
    """A ready model with what the rest of the app needs to feed it."""

    spec: ModelSpec
    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    dtype: torch.dtype
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    dim: int
    key: str                             # identity of model + weights: vectors of different keys never mix
    notes: list[str] = field(default_factory=list)
    precision_reason: str = ""           # why it runs in `dtype`, in words
    backend: str = "torch"
    weights: Path | None = None          # the weights file (None: random weights)
    measured: dict = field(default_factory=dict)   # cosines and speeds, where measured (onnx_export)

    @property
    def precision(self) -> str:
        """fp32, bf16 or fp16: the weights' precision (vectors are the same within 0.999 cosine)."""
        import torch
        return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    @property
    def device_type(self) -> str:
        return self.device.type

    def image_vectors(self, batch: np.ndarray) -> np.ndarray:
        from clipphotos.torch_towers import image_vectors
        return image_vectors(self, batch)

    def text_vectors(self, texts: Sequence[str], trimmed: bool, starts: Sequence[str] = ()) -> np.ndarray:
        """Unit vectors of the texts; torch reads each whole (`starts` serve ONNX Runtime's export,
        see onnx_runtime.OnnxModel.text_vectors; torch runs where that does not: a GPU, bf16)."""
        from clipphotos.torch_towers import text_vectors
        return text_vectors(self, texts, trimmed)

    def can_trim(self) -> bool:
        from clipphotos.torch_towers import can_trim
        return can_trim(self.model)


def gpu_possible(requested: str = "auto") -> bool:
    """Whether `requested` may mean a GPU, answered without importing torch: False means the
    model surely runs on the CPU (asked for, or no GPU driver on this machine)."""
    if requested != "auto":
        return requested != "cpu"
    if sys.platform == "darwin":
        import platform
        return platform.machine() == "arm64"           # Apple silicon: MPS
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")) or (
        sys.platform == "win32")


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA, then Apple's MPS, then the CPU, unless the user chose one."""
    import torch
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable("--device cuda was asked for, but PyTorch sees no CUDA GPU on this machine. "
                               "Use --device auto or cpu.")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelUnavailable("--device mps was asked for, but Apple's Metal backend is not available here. "
                               "Use --device auto or cpu.")
    if requested not in ("cpu", "cuda", "mps"):
        raise ModelUnavailable(f"unknown device {requested!r}: use auto, cpu, cuda or mps")
    return torch.device(requested)


def requested_precision(value: str | None = None) -> str:
    """The precision asked for: `value` (--precision), else $CLIPPHOTOS_PRECISION, else auto."""
    chosen = (value or os.environ.get(PRECISION_ENV) or "auto").strip().lower()
    if chosen not in PRECISIONS:
        source = "--precision" if value else PRECISION_ENV
        raise ModelUnavailable(f"unknown precision {chosen!r} ({source}): use {', '.join(PRECISIONS)}")
    return chosen


def plan_precision(device: str, requested: str = "auto", native_bf16: bool | None = None) -> tuple[str, str]:
    """The precision a model will run in on a device of type `device`, and why, before it loads.

    Asked for, it is that. Automatic: fp16 on GPUs; bf16 on CPUs that compute it natively
    (AVX512-BF16 or AMX), kept only if the model's vectors stay within 0.999 cosine of fp32
    (checked when the model loads); fp32 on other CPUs, where bf16 runs several times slower.
    """
    if requested != "auto":
        if requested == "int8" and device != "cpu":
            raise ModelUnavailable(f"int8 weights run on the CPU only (through ONNX Runtime); on a {device} GPU "
                                   f"use --precision auto or fp16")
        return requested, f"asked for (--precision or {PRECISION_ENV})"
    if device in ("cuda", "mps"):
        return "fp16", f"automatic: {device} GPU"
    if cpu_has_native_bf16() if native_bf16 is None else native_bf16:
        return "bf16", (f"automatic: this CPU computes bf16 natively; kept while the vectors stay within "
                        f"{HALF_PRECISION_AGREEMENT} cosine of fp32")
    return "fp32", "automatic: this CPU has no native bf16"


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (AVX512-BF16 or AMX); elsewhere bf16 is slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
        return " avx512_bf16" in flags or " amx_bf16" in flags
    except OSError:
        pass
    try:
        import torch
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and sys.platform != "darwin"
    except (AttributeError, RuntimeError):
        return False


def cpu_identity() -> str:
    """This CPU's model name and the instruction sets that decide speed: measured verdicts
    (which precision, which runtime) hold for this identity only."""
    import platform
    name, flags = platform.processor() or platform.machine(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name in ("", platform.machine()):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = line
                break
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "avx_vnni", "fma")
    found = [f for f in wanted if f" {f}" in flags]
    return f"{name} [{' '.join(found)}] {os.cpu_count()} cores"


def file_fingerprint(path: Path) -> str:
    """A cheap identity for a weights file: size plus the head and tail bytes."""
    digest = hashlib.blake2b(digest_size=12)
    size = path.stat().st_size
    digest.update(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            digest.update(f.read())
    return digest.hexdigest()


def _register_config(path: Path) -> str:
    """Make a model-config JSON known to OpenCLIP and return the name to create it by."""
    if not path.is_file():
        raise ModelUnavailable(f"model config {path} does not exist")
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"model config {path} is not valid JSON: {exc}") from None
    cfg = cfg.get("model_cfg", cfg)  # the hub's open_clip_config.json wraps the model config
    if not all(k in cfg for k in ("embed_dim", "vision_cfg", "text_cfg")):
        raise ModelUnavailable(f"{path} is not an OpenCLIP model config (needs embed_dim, vision_cfg, text_cfg)")
    name = config_name(path)
    with _registry_lock:
        # OpenCLIP registers configs by file stem; a private name keeps two "config.json" apart.
        from open_clip import factory
        factory._MODEL_CONFIGS[name] = cfg
    return name


def model_key(spec: ModelSpec, weights: Path | None) -> str:
    """Identity of model + weights: vectors of different keys never mix."""
    key_source = f"file:{file_fingerprint(weights)}" if weights else "random"
    name = spec.name if not spec.is_config_file else config_name(Path(spec.name))
    return f"{name}|{key_source}"


def config_name(path: Path) -> str:
    """The private name a model-config JSON is known by (also without registering it)."""
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"model config {path} is not readable JSON: {exc}") from None
    cfg = cfg.get("model_cfg", cfg)  # the hub's open_clip_config.json wraps the model config
    return f"clipphotos-{hashlib.blake2b(json.dumps(cfg, sort_keys=True).encode(), digest_size=6).hexdigest()}"


def load_model(spec: ModelSpec, verdicts: VerdictStore | None = None) -> LoadedModel:
    """Build the model, load its weights and choose device and precision.

    `verdicts` keeps the bf16 probe's answer between runs (see `_set_precision`).
    """
    import open_clip
    import torch

    from clipphotos.weights import load_weights
    device = pick_device(spec.device)
    if spec.is_config_file:
        name = _register_config(Path(spec.name))
    else:
        name = spec.name
        if name not in open_clip.list_models():
            raise ModelUnavailable(f"unknown OpenCLIP model {name!r}; see `python -m open_clip.factory` "
                                   f"list_models(), or pass a model-config JSON file")
    if spec.weights:
        weights = Path(spec.weights).expanduser()
        if not weights.is_file():
            raise ModelUnavailable(f"weights file {weights} does not exist")
    elif spec.pretrained:
        weights = resolve_pretrained(name, spec.pretrained)
    else:
        weights = None
    try:
        # Built without random initialisation, then filled (weights.py) strictly, every tensor:
        # no hub tower weights under the file's either.
        with _skipped_init() if weights else nullcontext():
            model = open_clip.create_model(name, pretrained=None, pretrained_text=False, device="cpu")
        if weights:
            load_weights(model, weights)
    except (RuntimeError, KeyError, ValueError, OSError) as exc:
        raise ModelUnavailable(f"{spec.describe()} could not be loaded: {str(exc).splitlines()[0][:300]}") from None
    model.eval()
    reparameterise(model)
    tokenizer = open_clip.get_tokenizer(name)
    pcfg = {**open_clip.get_model_preprocess_cfg(model), **published_normalisation(name, spec.pretrained)}
    size = pcfg.get("size", 224)
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    mean = tuple(pcfg.get("mean", (0.48145466, 0.4578275, 0.40821073)))
    std = tuple(pcfg.get("std", (0.26862954, 0.26130258, 0.27577711)))
    dim = embedding_width(model)
    loaded = LoadedModel(spec, model, tokenizer, device, torch.float32, size, mean, std, dim,  # type: ignore[arg-type]
                         model_key(spec, weights), weights=weights)
    if spec.precision == "int8":
        raise ModelUnavailable("int8 weights run through ONNX Runtime only, on the CPU: see clipphotos.onnx_runtime")
    set_precision(loaded, verdicts)
    return loaded


def published_normalisation(name: str, tag: str | None) -> dict:
    """The pixel mean and std the weights were trained with, as OpenCLIP publishes them per
    pretrained tag (MobileCLIP's are 0 and 1, not CLIP's): the model is built without its tag,
    so its own preprocess settings are the architecture's defaults. For weights from a file
    (no tag) the published ones count when every tag of that model agrees on them."""
    import open_clip
    tags = [tag] if tag else [t for m, t in open_clip.list_pretrained() if m == name]
    found = {(tuple(cfg["mean"]), tuple(cfg["std"])) for cfg in (open_clip.get_pretrained_cfg(name, t) for t in tags)
             if cfg and "mean" in cfg and "std" in cfg}
    if len(found) != 1:
        return {}
    mean, std = found.pop()
    return {"mean": mean, "std": std}


def embedding_width(model: Any) -> int:
    """The width of the model's vectors: its text projection's output, on the model itself
    (OpenCLIP's CLIP) or inside its text tower (CustomTextCLIP: MobileCLIP, SigLIP)."""
    import torch
    for owner in (model, getattr(model, "text", None)):
        projection = getattr(owner, "text_projection", None)
        if isinstance(projection, torch.nn.Linear):
            return int(projection.out_features)
        if isinstance(projection, torch.Tensor):
            return int(projection.shape[1])
    return int(model.visual.output_dim)


def reparameterise(model: Any) -> None:
    """Fold a MobileCLIP image tower's training-time branches (MobileOne/RepMixer convolutions
    with their batch norms) into the single convolutions inference needs: same vectors, fewer
    and smaller operations, and what the ONNX export should see. Other models have no such
    branches and are left as they are. Call after the weights are in (they name the branches).
    """
    visual = getattr(model, "visual", None)
    if visual is None or not any(hasattr(m, "reparameterize") for m in visual.modules()):
        return
    from timm.utils.model import reparameterize_model
    reparameterize_model(visual, inplace=True)


@contextmanager
def _skipped_init() -> Iterator[None]:
    """Build a model whose every tensor is about to be overwritten without initialising it.

    Filling 150 M parameters with random numbers takes seconds, all thrown away when the
    weights arrive: torch.nn.init's fillers do nothing meanwhile. (Buffers a model computes,
    like a causal mask, are not made by them.) OpenCLIP's "initialized randomly" warning is
    silenced too: ours come right after.
    """
    import torch
    names = ("normal_", "uniform_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
             "xavier_normal_", "constant_", "zeros_", "ones_", "orthogonal_")
    saved = {n: getattr(torch.nn.init, n) for n in names if hasattr(torch.nn.init, n)}

    def keep(record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()
    root = logging.getLogger()
    root.addFilter(keep)
    for n in saved:
        setattr(torch.nn.init, n, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for n, fn in saved.items():
            setattr(torch.nn.init, n, fn)
        root.removeFilter(keep)


class VerdictStore:
    """Answers measured once per model, CPU and library version, kept in a JSON file (the
    library's folder), so no later run pays for the measurement again."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, key: str) -> Any:
        try:
            return json.loads(self.path.read_text()).get(key)
        except (OSError, ValueError):
            return None

    def put(self, key: str, value: Any) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            data = {}
        data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_privately(self.path, lambda tmp: tmp.write_text(json.dumps(data, indent=1)))


def set_precision(loaded: LoadedModel, verdicts: VerdictStore | None = None) -> None:
    """Cast the weights to the planned precision; an automatic bf16 must first pass the probe
    on pictures and texts (whose answer `verdicts` keeps for the next run)."""
    import torch
    name, reason = plan_precision(loaded.device.type, requested_precision(loaded.spec.precision))
    if name == "bf16" and loaded.spec.precision == "auto":
        probe_key = f"bf16 probe 2|{loaded.key}|{cpu_identity()}|torch {torch.__version__}"
        measured = verdicts.get(probe_key) if verdicts is not None else None
        if not isinstance(measured, dict):
            measured = half_precision_agreement(loaded, torch.bfloat16)
            if verdicts is not None:
                verdicts.put(probe_key, measured)
        loaded.measured = dict(measured)
        worst = min(measured.values())
        cosines = f"pictures {measured['image_cosine']:.5f}, texts {measured['text_cosine']:.5f}"
        if worst < HALF_PRECISION_AGREEMENT:
            name, reason = "fp32", f"automatic: bf16 drifted from fp32 (cosine to fp32: {cosines})"
        else:
            reason = f"automatic: native bf16 on this CPU, cosine to fp32: {cosines}"
    cast(loaded, name, reason)


def cast(loaded: LoadedModel, name: str, reason: str) -> None:
    """Put the weights in precision `name` (fp32, bf16, fp16) on the model's device, saying why."""
    import torch
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
    loaded.model.to(device=loaded.device, dtype=dtype)
    loaded.dtype = dtype
    loaded.precision_reason = reason
    loaded.notes[:] = [f"{loaded.device.type}, {name} through torch ({reason})"]


def half_precision_agreement(loaded: LoadedModel, dtype: torch.dtype,
                             pictures: np.ndarray | None = None) -> dict[str, float]:
    """The worst cosines between fp32 and `dtype` vectors of a fixed probe, pictures and texts
    (`pictures`: prepared model inputs; default noise). The model is left in fp32."""
    import torch

    from clipphotos.torch_towers import unit
    if pictures is None:
        pictures = np.random.default_rng(0).normal(0, 1, (4, 3, loaded.image_size, loaded.image_size))
    probe = torch.from_numpy(pictures.astype(np.float32))
    tokens = loaded.tokenizer(list(PROBE_TEXTS)).to(loaded.device)
    with torch.inference_mode():
        ref_images, ref_texts = unit(loaded.model.encode_image(probe)), unit(loaded.model.encode_text(tokens))
        loaded.model.to(dtype)
        images, texts = unit(loaded.model.encode_image(probe.to(dtype))), unit(loaded.model.encode_text(tokens))
        loaded.model.to(torch.float32)
    return {"image_cosine": round(float((ref_images * images).sum(-1).min()), 6),
            "text_cosine": round(float((ref_texts * texts).sum(-1).min()), 6)}
