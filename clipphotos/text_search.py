"""Searching the words read in photos: which photos' text holds a query's words, and where.

A query is cut into terms: a quoted phrase is one term that must appear as written, any other
word is a term of its own. Terms are folded like the stored text (no case, no accents), and
matched as substrings ("sunflower" finds "sunflower42", "receipt" finds "RECEIPTS"), through
the catalog's trigram index. Words under 3 characters and a few words that describe photos
rather than name what they show ("photo of the") are left out: they would match everywhere.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from clipphotos.catalog import Catalog
from clipphotos.text_reader import fold

MIN_TERM = 3
# A photo whose text holds at least this share of the query's terms counts as a text match
# and ranks above photos that only look like the query ("most of them": 2 of 3, 3 of 4...).
MOST = 0.6
# A term found as a whole word outranks the same term inside a longer word ("cat" vs "catalog").
WHOLE_WORD = 0.5
_FILLER = frozenset("the and with for from that this photo photos picture pictures image images".split())
_PHRASE = re.compile(r'"([^"]*)"?')


@dataclass(frozen=True)
class TextMatch:
    share: float                # share of the query's terms found in the photo's text
    lines: tuple[str, ...]      # the photo's lines that hold one of them, in reading order
    whole: float = 0.0          # share of the query's terms found as whole words ("cat", not in "catalog")

    @property
    def strong(self) -> bool:
        return self.share >= MOST

    @property
    def weight(self) -> float:
        """What the text adds to a photo's score: its share of the terms, a whole word counting more."""
        return self.share + WHOLE_WORD * self.whole


def query_terms(query: str) -> list[str]:
    """The folded terms of a query: quoted phrases whole, other words one by one."""
    terms = [fold(p) for p in _PHRASE.findall(query) if fold(p)]
    for word in fold(_PHRASE.sub(" ", query)).split():
        word = word.strip(".,;:!?()[]{}'\"")
        if len(word) >= MIN_TERM and word not in _FILLER:
            terms.append(word)
    return list(dict.fromkeys(terms))


def match_text(catalog: Catalog, query: str) -> dict[int, TextMatch]:
    """content id → how its text matches the query, for every content holding one of its terms."""
    terms = query_terms(query)
    found: dict[int, dict[str, list[str]]] = {}
    for term in terms:
        for content_id, lines in catalog.contents_with_text(term).items():
            found.setdefault(content_id, {})[term] = lines
    out = {}
    for content_id, by_term in found.items():
        lines = [line for term_lines in by_term.values() for line in term_lines]
        whole = sum(any(_as_word(term, fold(line)) for line in term_lines) for term, term_lines in by_term.items())
        out[content_id] = TextMatch(len(by_term) / len(terms), tuple(dict.fromkeys(lines)), whole / len(terms))
    return out


def _as_word(term: str, folded_line: str) -> bool:
    """Whether the term stands in the line as a word of its own, not inside a longer one."""
    return re.search(rf"(?<![^\W_]){re.escape(term)}(?![^\W_])", folded_line) is not None


def highlight_spans(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """(start, end) indices in `text` of every place a folded term appears, merged and in order."""
    folded, origin = _fold_with_origin(text)
    spans = []
    for term in terms:
        start = folded.find(term)
        while term and start >= 0:
            end = start + len(term)
            spans.append((origin[start], origin[end - 1] + 1))
            start = folded.find(term, end)
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _fold_with_origin(text: str) -> tuple[str, list[int]]:
    """`fold`, character by character, with the index in `text` each folded character came from.

    Unlike `fold`, runs of spaces are kept (one each), so positions map back one to one."""
    folded, origin = [], []
    for i, ch in enumerate(text):
        plain = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        for c in (" " if plain.isspace() else plain.casefold()):
            folded.append(c)
            origin.append(i)
    return "".join(folded), origin
