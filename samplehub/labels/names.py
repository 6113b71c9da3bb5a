"""Label-name normalisation: one spelling for the many ways datasets write a class.

Dataset class lists write the same words as ``storagetanks``, ``StorageTanks``,
``storage_tank`` or ``Storage Tanks``. Before a label is matched to the OSM Semantic
Network or embedded (main paper, section 3.3.1, "label text augmentation") its name is
split into lower-case words: CamelCase and ``_``/``-``/space separators are split, glued
words (UC Merced's ``denseresidential``) are segmented against a vocabulary, American
spellings are mapped to the British ones the OSM wiki uses, and plurals are reduced.

Folder names as datasets ship them also carry ordinal prefixes that fix the class order
on disk: RSSCN7's ``aGrass``, ``bField``, ``cIndustry``, or ``01_forest`` and
``c-industry``. A prefix glued to a capitalised word (``aGrass``) or a number
(``01_forest``) is dropped from any name (:func:`strip_ordinal`); a lone letter before a
separator (``c-industry``) only when every class of the dataset has one, each a
different letter (:func:`strip_ordinals`), since on its own it could be a word
(``t-junction``).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from samplehub.errors import LabelGraphError

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[\s_\-/&,.+]+")
_US_TO_UK = {"harbor": "harbour", "center": "centre", "theater": "theatre", "color": "colour"}
_NOT_PLURAL_ENDINGS = ("ss", "us", "is", "as", "ous")
_MIN_PIECE = 3
_MAX_PIECES = 3
# ``aGrass`` (a lower-case letter glued to a capitalised word) and ``01_forest`` / ``01forest``.
_ORDINAL = re.compile(r"^(?:[a-z](?=[A-Z][a-z])|\d{1,3}(?:[\s_\-.]+|(?=[A-Za-z]{3})))")
# ``c-industry``: one letter and a separator; an ordinal only when the whole dataset has one.
_LETTER_ORDINAL = re.compile(r"^([A-Za-z])[\s_\-.]+(?=[A-Za-z]{2})")


def strip_ordinal(name: str) -> str:
    """``name`` without an unambiguous ordinal prefix (``aGrass`` -> ``Grass``).

    Drops a lower-case letter glued to a capitalised word (RSSCN7's ``cIndustry``) or a
    leading number of up to three digits (``01_forest``, ``3-river``). A name that would
    be left with no letters is returned unchanged.
    """
    text = unicodedata.normalize("NFKC", name).strip()
    stripped = _ORDINAL.sub("", text, count=1)
    return stripped if any(c.isalpha() for c in stripped) else text


def strip_ordinals(names: list[str]) -> dict[str, str]:
    """Each class name of one dataset without its ordinal prefix.

    A single letter and a separator (``a-grass``, ``c-industry``) is an ordinal only when
    every name of the dataset (two or more) starts that way with a different letter;
    otherwise only the prefixes of :func:`strip_ordinal` are dropped.

    Args:
        names: the dataset's class names as shipped.

    Returns:
        ``{shipped name: name without the prefix}``.
    """
    letters = [_LETTER_ORDINAL.match(unicodedata.normalize("NFKC", n).strip()) for n in names]
    lettered = (
        len(names) >= 2
        and all(letters)
        and len({m.group(1).lower() for m in letters if m}) == len(names)
    )
    if lettered:
        return {
            n: _LETTER_ORDINAL.sub("", unicodedata.normalize("NFKC", n).strip(), count=1)
            for n in names
        }
    return {n: strip_ordinal(n) for n in names}


def split_words(name: str) -> list[str]:
    """Split a raw label name into lower-case words (no segmentation, no singulars).

    An unambiguous ordinal prefix is dropped first (:func:`strip_ordinal`).

    Args:
        name: a class name as a dataset writes it, e.g. ``"SeaLake"``, ``"Sea & Lake"``,
            ``"bare-soil"``, ``"railwayStation"``, ``"cIndustry"``.

    Returns:
        The words, e.g. ``["sea", "lake"]``.

    Raises:
        LabelGraphError: when ``name`` has no letters or digits at all.
    """
    text = strip_ordinal(name)
    words = [w.lower() for part in _SEPARATORS.split(text) for w in _CAMEL.split(part) if w]
    if not words:
        raise LabelGraphError(f"label name {name!r} has no letters or digits; fix the label tree")
    return words


def singular(word: str) -> str:
    """English singular of a plural noun (``tanks`` -> ``tank``, ``ferries`` -> ``ferry``)."""
    if len(word) <= 3 or word.endswith(_NOT_PLURAL_ENDINGS):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def segment(word: str, vocabulary: frozenset[str]) -> list[str]:
    """Split a glued word into vocabulary words, fewest pieces first.

    ``denseresidential`` -> ``["dense", "residential"]``. A word already in the vocabulary,
    or one that cannot be covered by at most three known pieces of three letters or more,
    is returned unchanged, so unknown words (``chaparral``) are never mangled.

    Args:
        word: one lower-case word.
        vocabulary: known lower-case words.
    """
    if word in vocabulary or len(word) < 2 * _MIN_PIECE:
        return [word]
    best = _segment(word, vocabulary)
    return list(best) if best is not None else [word]


@lru_cache(maxsize=4096)
def _segment(word: str, vocabulary: frozenset[str]) -> tuple[str, ...] | None:
    best: tuple[str, ...] | None = None
    for cut in range(_MIN_PIECE, len(word) - _MIN_PIECE + 1):
        head, tail = word[:cut], word[cut:]
        if head not in vocabulary and singular(head) not in vocabulary:
            continue
        known_tail = tail in vocabulary or singular(tail) in vocabulary
        rest = (tail,) if known_tail else _segment(tail, vocabulary)
        if rest is None or len(rest) + 1 > _MAX_PIECES:
            continue
        candidate = (head, *rest)
        # Fewest pieces wins; ties go to the longest first piece (later cuts overwrite).
        if best is None or len(candidate) <= len(best):
            best = candidate
    return best


def normalize_words(name: str, vocabulary: frozenset[str] = frozenset()) -> list[str]:
    """Words of a label name, segmented, UK-spelled and singular.

    Args:
        name: a raw class name.
        vocabulary: known words used to segment glued names; empty disables segmentation.

    Returns:
        E.g. ``"storagetanks"`` -> ``["storage", "tank"]``, ``"Harbor"`` -> ``["harbour"]``.
    """
    words: list[str] = []
    for raw in split_words(name):
        for piece in segment(raw, vocabulary) if vocabulary else [raw]:
            words.append(_US_TO_UK.get(singular(piece), singular(piece)))
    return words


def canonical_name(name: str, vocabulary: frozenset[str] = frozenset()) -> str:
    """``snake_case`` key of a label name, used to spot duplicates within a dataset."""
    return "_".join(normalize_words(name, vocabulary))


def display_phrase(name: str, vocabulary: frozenset[str] = frozenset()) -> str:
    """Readable phrase of a label name (``"SeaLake"`` -> ``"sea lake"``), plurals kept."""
    words: list[str] = []
    for raw in split_words(name):
        words.extend(segment(raw, vocabulary) if vocabulary else [raw])
    return " ".join(words)
