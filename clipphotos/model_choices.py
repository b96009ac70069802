"""The models on offer, the one default, and fetching weights with progress and a real cancel.

The one place that names models: the CLI and the app take their default from here, and the
app's picker its choices. It imports neither torch nor Qt, so the app's window appears before
any of them loads. Names and tags are OpenCLIP's (`open_clip.list_pretrained()`); sizes are the
fp32 checkpoints (parameter count × 4 bytes). Downloads go into the model hub's own cache, where
`clipphotos.models.resolve_pretrained` (and every other OpenCLIP program) finds them later.
"""
from __future__ import annotations

import importlib.util
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class ModelChoice:
    key: str
    title: str
    blurb: str
    name: str                  # OpenCLIP model name
    pretrained: str            # OpenCLIP pretrained tag
    hub_repo: str
    download_mb: int
    needs: str | None = None   # an optional Python package the model needs
    cpu_speeds: tuple[float, ...] = ()   # photos/s its image encoder reached on each of SPEED_MACHINES

    @property
    def speed_text(self) -> str:
        """The measured speeds, each said with the machine it was measured on ("" if not measured)."""
        if not self.cpu_speeds:
            return ""
        (rate, machine), *others = zip(self.cpu_speeds, SPEED_MACHINES, strict=True)
        on = [f"about {_rate(rate)} photos a second on {machine}", *(f"{_rate(r)} on {m}" for r, m in others)]
        return f"The model alone, measured without a GPU: {', '.join(on)}."

    @property
    def size_text(self) -> str:
        return f"{self.download_mb / 1000:.1f} GB" if self.download_mb >= 1000 else f"{self.download_mb} MB"

    @property
    def available(self) -> bool:
        return self.needs is None or importlib.util.find_spec(self.needs) is not None


def _rate(per_second: float) -> str:
    return f"{per_second:.1f}" if per_second < 10 else f"{per_second:.0f}"


def speed_here_text(per_second: float) -> str:
    """A model's speed as measured on this computer (at its first load here: the image encoder
    alone, as `ModelChoice.speed_text` says it for the development machine)."""
    return f"The model alone: about {_rate(per_second)} photos a second on this computer (measured here)."


# Where the picker's speeds come from: `python bench/model_picker.py` on two kinds of this project's
# development machine, 2 cores and no GPU each (the image encoder alone, through ONNX Runtime at
# the faster of fp32 and int8 within 0.999 cosine of fp32: the path the app takes on a CPU; random
# weights). The AVX2 figures are from 2 December (one encode of 16 on both cores, as the indexer
# then ran), the AMX ones from 3 December (two encodes of 8 side by side, as it runs now).
SPEED_MACHINES = ("a 2-core AMD EPYC (AVX2)", "a 2-core Intel Xeon with AMX")

CHOICES: tuple[ModelChoice, ...] = (
    ModelChoice("fast", "Fast", "Quick on any computer, good for everyday searches.",
                "ViT-B-32-256", "datacomp_s34b_b86k", "laion/CLIP-ViT-B-32-256x256-DataComp-s34B-b86K", 605,
                cpu_speeds=(11.9, 41.7)),
    # Apple's MobileCLIP-S2 finds the right photo as often as ViT-L-14 (DataComp XL), the earlier
    # "best", at about a tenth of its cost on a CPU: image retrieval R@1 on Flickr30k 73.4 % and
    # MSCOCO 45.4 % against 73.4 % and 45.7 % (ViT-B-32-256: 64.9 % and 39.9 %); ImageNet zero-shot
    # 74.4 % (ViT-L-14 79.2 %, ViT-B-32-256 72.8 %). Sources: apple/ml-mobileclip
    # results/mobileclip_s2.jsonl and README; open_clip docs/openclip_retrieval_results.csv and
    # openclip_results.csv. MobileCLIP2-S2 scores higher (74.8 % and 48.8 %) at the same cost, but
    # its weights are licensed for non-commercial research only (Apple's LICENSE_MODELS), so it is
    # not offered here; `--model MobileCLIP2-S2 --pretrained dfndr2b` still takes it. The image
    # tower is folded for inference at load (models.reparameterise). Its convolutions gain little
    # from int8, so it is 0.46x Fast on the AVX2 CPU and 0.22x on the AMX one, where int8 matrix
    # products are fast. See bench/model_picker.py.
    ModelChoice("best", "Best quality", "Finds the right photo more often; two to five times slower than Fast on a CPU.",
                "MobileCLIP-S2", "datacompdr", "apple/MobileCLIP-S2-OpenCLIP", 397, cpu_speeds=(5.4, 9.2)),
    ModelChoice("multilingual", "Multilingual", "Search in about 100 languages, not only English.",
                "xlm-roberta-base-ViT-B-32", "laion5b_s13b_b90k",
                "laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k", 1470, needs="transformers"),
)


DEFAULT = CHOICES[0]
DEFAULT_MODEL, DEFAULT_PRETRAINED = DEFAULT.name, DEFAULT.pretrained


class ModelUnavailable(Exception):
    """The model cannot be built: str(exc) says why and what the user can do, in plain words."""


@dataclass(frozen=True)
class ModelSpec:
    """What the user asked for. A library remembers it and reuses it on later runs."""

    name: str = DEFAULT_MODEL            # an OpenCLIP model name or the path of a model-config JSON
    pretrained: str | None = DEFAULT_PRETRAINED
    weights: str | None = None           # a local checkpoint file, instead of the hub
    device: str = "auto"
    precision: str = "auto"              # auto, fp32, bf16 or fp16: see `plan_precision`

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "pretrained": self.pretrained, "weights": self.weights,
                           "device": self.device, "precision": self.precision})

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        data = json.loads(text)
        return cls(data["name"], data.get("pretrained"), data.get("weights"), data.get("device", "auto"),
                   data.get("precision", "auto"))

    @property
    def is_config_file(self) -> bool:
        return self.name.endswith(".json")

    def describe(self) -> str:
        source = f"weights {self.weights}" if self.weights else (self.pretrained or "random weights")
        return f"{self.name} ({source})"


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps downloaded weights (respects HF_HUB_CACHE / HF_HOME).

    Read from the environment on each call: huggingface_hub freezes its own copy at import.
    """
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants
    return Path(constants.HF_HUB_CACHE)


def hub_reachable(timeout: float = 4.0) -> bool:
    """Whether the model hub answers at all: offline, huggingface_hub retries for most of a minute."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    host = urlparse(endpoint).hostname or "huggingface.co"
    port = urlparse(endpoint).port or (443 if endpoint.startswith("https") else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_pretrained(name: str, tag: str, download: bool = True) -> Path:
    """The local file of an OpenCLIP pretrained tag: from the hub's cache, or downloaded once."""
    import open_clip
    from huggingface_hub import hf_hub_download
    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg:
        known = ", ".join(t for m, t in open_clip.list_pretrained() if m == name) or "none"
        raise ModelUnavailable(f"OpenCLIP has no pretrained weights {tag!r} for {name} (known tags: {known})")
    hub = cfg.get("hf_hub", "")
    if not hub:
        raise ModelUnavailable(f"{name} {tag} is only published at {cfg.get('url')}; download it and pass "
                               f"the file with --weights")
    repo, filename = _split_hub(hub)
    candidates = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    for candidate in candidates:
        try:
            return Path(hf_hub_download(repo, candidate, local_files_only=True, cache_dir=hub_cache_dir()))
        except Exception:  # not cached: try the next name, then the network
            pass
    if not download or not hub_reachable():
        raise ModelUnavailable(
            f"The weights of {name} ({tag}) are not on this computer and the model hub cannot be reached.\n"
            f"  They would be downloaded once into {hub_cache_dir()}.\n"
            f"  Connect to the internet and run again, or point at a local checkpoint with "
            f"--weights FILE (.safetensors, .pt or .bin).")
    last: Exception | None = None
    for candidate in candidates:
        try:
            return Path(hf_hub_download(repo, candidate, cache_dir=hub_cache_dir()))  # prints its own progress bar on stderr
        except Exception as exc:
            last = exc
    raise ModelUnavailable(f"Downloading {name} ({tag}) from {repo} failed: {last}")


def _split_hub(hub: str) -> tuple[str, str]:
    """OpenCLIP writes hub entries as 'org/repo/' or 'org/repo/file.bin'."""
    parts = hub.split("/")
    return "/".join(parts[:2]), "/".join(parts[2:])


@dataclass(frozen=True)
class ModelRequest:
    """A model as the app's picker names it (no device or precision yet); `spec()` is the core's."""

    name: str
    pretrained: str | None
    weights: str | None = None

    @classmethod
    def of(cls, choice: ModelChoice, weights: str | None = None) -> ModelRequest:
        return cls(choice.name, None if weights else choice.pretrained, weights)

    @classmethod
    def from_options(cls, name: str | None, pretrained: str | None, weights: str | None) -> ModelRequest | None:
        """What --model/--pretrained/--weights ask for, the default model filling the gaps; None if
        none was given (the library's own model then)."""
        if not (name or pretrained or weights):
            return None
        name = name or DEFAULT_MODEL
        if name.endswith(".json"):
            name = str(Path(name).expanduser().resolve())
        weights = str(Path(weights).expanduser().resolve()) if weights else None
        if pretrained is None and weights is None and name == DEFAULT_MODEL:
            pretrained = DEFAULT_PRETRAINED
        return cls(name, pretrained, weights)

    def spec(self, device: str | None = None) -> ModelSpec:
        return ModelSpec(self.name, self.pretrained, self.weights, device or "auto")

    @property
    def choice(self) -> ModelChoice | None:
        return next((c for c in CHOICES if c.name == self.name and (self.weights or c.pretrained == self.pretrained)),
                    None)

    def describe(self) -> str:
        label = short_name(self.name)
        source = f"file {os.path.basename(self.weights)}" if self.weights else (self.pretrained or "random weights")
        return f"{label} ({source})"

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "pretrained": self.pretrained, "weights": self.weights})

    @classmethod
    def from_json(cls, text: str | None) -> ModelRequest | None:
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(data["name"], data.get("pretrained"), data.get("weights"))
        except (ValueError, KeyError, TypeError):
            return None


def short_name(name: str) -> str:
    """'ViT-B-32-256', or for a config file its name (its folder's, for a bare config.json)."""
    if not name.endswith(".json"):
        return name
    stem = os.path.splitext(os.path.basename(name))[0]
    if stem in ("config", "open_clip_config"):
        return os.path.basename(os.path.dirname(name)) or stem
    return stem


class DownloadCancelled(Exception):
    """The user stopped the download; the partial file stays in the cache to resume later."""


def cached_weights(choice: ModelChoice) -> Path | None:
    """The weights' file if the hub cache already holds it (no network)."""
    from huggingface_hub import try_to_load_from_cache

    for filename in HUB_FILES:
        found = try_to_load_from_cache(choice.hub_repo, filename, cache_dir=hub_cache_dir())
        if isinstance(found, str):
            return Path(found)
    return None


def download_weights(choice: ModelChoice, progress: Callable[[tuple[int, int | None]], None],
                     cancel: threading.Event) -> Path:
    """Fetch the weights into the hub cache, reporting (bytes done, total) as it goes.

    Raises ModelUnavailable (with the core's plain-language message) when the hub cannot be
    reached, DownloadCancelled as soon as `cancel` is set: the transfer loop itself checks it,
    so a cancel stops the download within one chunk rather than at the end.
    """
    from huggingface_hub import constants, hf_hub_download

    found = cached_weights(choice)
    if found is not None:
        return found
    if not hub_reachable():
        return resolve_pretrained(choice.name, choice.pretrained, download=False)  # raises the message

    class _Bar:
        """Enough of tqdm for huggingface_hub: reports bytes and is where a cancel strikes."""

        def __init__(self, *args: object, total: int | None = None, initial: int = 0, **kwargs: object) -> None:
            self.n, self.total, self._last = initial, total, 0.0
            progress((self.n, self.total))

        def update(self, n: int = 1) -> None:
            if cancel.is_set():
                raise DownloadCancelled()
            self.n += n
            now = time.monotonic()
            if now - self._last >= 0.1 or (self.total and self.n >= self.total):
                self._last = now
                progress((self.n, self.total))

        def close(self) -> None:
            pass

        def __enter__(self) -> _Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    # The Xet transfer runs in native threads that a Python exception cannot stop; the plain
    # HTTP path streams chunk by chunk through _Bar.update, so a cancel really stops it, within
    # one chunk: 1 MiB rather than the default 10 MiB, which also makes the progress bar move.
    xet, constants.HF_HUB_DISABLE_XET = constants.HF_HUB_DISABLE_XET, True
    chunk, constants.DOWNLOAD_CHUNK_SIZE = constants.DOWNLOAD_CHUNK_SIZE, CHUNK_BYTES
    last: Exception | None = None
    try:
        for filename in HUB_FILES:
            if cancel.is_set():
                raise DownloadCancelled()
            try:
                # The endpoint `hub_reachable` probed (HF_ENDPOINT, a mirror), else the hub's own.
                return Path(hf_hub_download(choice.hub_repo, filename, tqdm_class=_Bar,  # type: ignore[arg-type]
                                            endpoint=os.environ.get("HF_ENDPOINT") or None,
                                            cache_dir=hub_cache_dir()))
            except DownloadCancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - this name is missing: try the next one
                last = exc
    finally:
        constants.HF_HUB_DISABLE_XET, constants.DOWNLOAD_CHUNK_SIZE = xet, chunk
    raise ModelUnavailable(f"Downloading {choice.name} ({choice.pretrained}) from {choice.hub_repo} failed: {last}")
