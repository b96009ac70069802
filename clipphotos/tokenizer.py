"""CLIP's byte-pair tokenizer without torch: what a search needs to turn words into token ids.

OpenCLIP's `SimpleTokenizer` returns torch tensors and importing OpenCLIP imports torch, which
costs seconds a CLI search should not pay. This is the same algorithm over the same vocabulary
file (read from OpenCLIP's package folder without importing it), returning numpy; the tests
check that both give the same ids. Only OpenCLIP's default CLIP tokenizer ("lower" cleaning,
no extra special tokens) is covered: models with another tokenizer stay on torch.
"""
from __future__ import annotations

import gzip
import hashlib
import html
import importlib.util
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from clipphotos.private import write_privately

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"


def vocab_path() -> Path:
    """OpenCLIP's BPE merges file, found without importing OpenCLIP (which imports torch)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open_clip is not installed: its BPE vocabulary is needed")
    return Path(next(iter(spec.submodule_search_locations))) / VOCAB_FILE


@lru_cache(maxsize=1)
def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class _Table:
    """Strings to numbers by binary search in a sorted array: loaded from a file in a few
    milliseconds, where building the same dict from the vocabulary takes a fifth of a second."""

    def __init__(self, keys: np.ndarray, values: np.ndarray) -> None:
        self.keys, self.values = keys, values   # keys sorted, unique

    @classmethod
    def numbering(cls, keys: list[str]) -> _Table:
        """Each key to its position in `keys` (the last one, for a key given twice, as a dict would)."""
        backwards = np.array(keys[::-1])
        unique, first = np.unique(backwards, return_index=True)
        return cls(unique, (len(keys) - 1 - first).astype(np.int32))

    def get(self, key: str, default: int) -> int:
        i = int(np.searchsorted(self.keys, key))
        return int(self.values[i]) if i < len(self.keys) and self.keys[i] == key else default

    def __getitem__(self, key: str) -> int:
        found = self.get(key, -1)
        if found < 0:
            raise KeyError(key)
        return found


def _tables(vocab: Path, cache: Path | None) -> tuple[_Table, _Table]:
    """(token → id, merge pair "a b" → rank): from the cache folder when a run before left
    them there (named by the vocabulary's checksum), else built from the vocabulary and left."""
    raw = vocab.read_bytes()
    kept = cache / f"clip-bpe-{hashlib.blake2b(raw, digest_size=8).hexdigest()}.npz" if cache else None
    if kept is not None:
        try:
            with np.load(kept) as saved:
                return _Table(saved["tokens"], saved["ids"]), _Table(saved["pairs"], saved["ranks"])
        except (OSError, KeyError, ValueError):
            pass
    merges = gzip.decompress(raw).decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    single = list(_bytes_to_unicode().values())
    encoder = _Table.numbering(single + [v + "</w>" for v in single] + [m.replace(" ", "") for m in merges]
                               + ["<start_of_text>", "<end_of_text>"])
    ranks = _Table.numbering(merges)
    if kept is not None:
        try:
            kept.parent.mkdir(parents=True, exist_ok=True)
            write_privately(kept, lambda tmp: np.savez(tmp, tokens=encoder.keys, ids=encoder.values,
                                                       pairs=ranks.keys, ranks=ranks.values))
        except OSError:
            pass   # a read-only library: built again next time
    return encoder, ranks


class ClipTokenizer:
    """Texts to CLIP token ids: [start, bpe..., end, 0...] padded or cut to `context_length`.

    `cache`: a folder where the vocabulary's lookup tables are kept between runs.
    """

    def __init__(self, context_length: int = 77, path: Path | None = None, cache: Path | None = None) -> None:
        import regex
        self.encoder, self.ranks = _tables(path or vocab_path(), cache)
        self.sot, self.eot = self.encoder["<start_of_text>"], self.encoder["<end_of_text>"]
        self.context_length = context_length
        self._cache: dict[str, list[int]] = {"<start_of_text>": [self.sot], "<end_of_text>": [self.eot]}
        self._pattern = regex.compile(
            r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE)

    def _bpe(self, token: str) -> list[int]:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:  # merge the best-ranked pair everywhere, until no pair is known
            ranked = [(self.ranks.get(f"{a} {b}", 1 << 30), a, b) for a, b in zip(word, word[1:])]
            rank, first, second = min(ranked, key=lambda r: r[0])
            if rank == 1 << 30:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        ids = [self.encoder[w] for w in word]
        self._cache[token] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        if not (text.isascii() and text.isprintable() and "&" not in text):
            # ftfy repairs mis-decoded Unicode (and, like html, entities); printable ASCII without
            # an entity it leaves as it is, so a typed query skips importing it (most of a second)
            import ftfy
            text = ftfy.fix_text(text)
        text = " ".join(html.unescape(html.unescape(text)).strip().split()).strip().lower()
        byte_map = _bytes_to_unicode()
        ids: list[int] = []
        for token in self._pattern.findall(text):
            ids.extend(self._bpe("".join(byte_map[b] for b in token.encode("utf-8"))))
        return ids

    def __call__(self, texts: Sequence[str] | str) -> np.ndarray:
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot, *self.encode(text), self.eot]
            if len(ids) > self.context_length:
                ids = ids[:self.context_length]
                ids[-1] = self.eot
            out[row, :len(ids)] = ids
        return out


def read_length(tokens: np.ndarray, pool_type: str, eos_id: int | None = None) -> int:
    """How many leading token slots a causal text tower's output depends on: up to the last
    slot it reads (the end-of-text token, found as OpenCLIP's pooling finds it)."""
    if pool_type == "eos":
        read_at = (tokens == eos_id).astype(np.int32).argmax(-1)
    else:
        read_at = tokens.argmax(-1)
    return int(read_at.max()) + 1
