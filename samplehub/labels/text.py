"""Label text augmentation (main paper, section 3.3.1 and Figure 3).

"The textual similarity is first enhanced by augmenting the label text with additional
descriptive information retrieved from external sources." Our source is the OSM
Semantic Network: a label name is normalised (:mod:`samplehub.labels.names`), matched to
OSM tags (:meth:`OsmSemanticNetwork.match`) and the English definitions of those tags are
appended after cleaning: wiki residue (URLs, ``key=value`` dumps, templates) is dropped,
duplicate sentences are removed and at most ``max_sentences`` sentences are kept so that
the name itself keeps its weight in the embedding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from samplehub.labels.names import display_phrase, normalize_words
from samplehub.labels.osm import OsmSemanticNetwork, TagMatch

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_JUNK = re.compile(r"https?://|www\.|\{\{|\}\}|\[\[|\]\]|\||==|::")
_TAG_DUMP = re.compile(r"\b[a-z_:]+=[a-z_*|;]+\b")
_MIN_WORDS = 3


@dataclass(frozen=True)
class AugmentedLabel:
    """A label name with the text used to embed it.

    Attributes:
        name: the label as the dataset writes it.
        words: normalised words (``["storage", "tank"]``).
        osm_tags: matched OSM tags (``["man_made=storage_tank"]``), empty if none.
        osm_uris: their concept URIs.
        osm_qualifier: label words outside the matched OSM phrase (``("dense",)``): the
            label is narrower than its tags (see :mod:`samplehub.labels.osm`).
        text: the augmented text that is embedded.
    """

    name: str
    words: tuple[str, ...]
    osm_tags: tuple[str, ...]
    osm_uris: tuple[str, ...]
    osm_qualifier: tuple[str, ...]
    text: str

    @property
    def tag_match(self) -> TagMatch:
        """The OSM match as used by the structural similarity."""
        return TagMatch(self.osm_uris, self.osm_qualifier)


def clean_definitions(definitions: list[str], max_sentences: int = 2) -> list[str]:
    """Sentences of OSM definitions without junk or repeats, first ``max_sentences`` kept.

    A sentence is junk when it carries wiki markup or URLs, when it is mostly a tag dump
    (``landuse=farm``), or when it has fewer than three words.
    """
    kept: list[str] = []
    seen: set[str] = set()
    for definition in definitions:
        for sentence in _SENTENCE_END.split(" ".join(definition.split())):
            sentence = _TAG_DUMP.sub("", sentence).strip(" ,;:")
            key = sentence.lower()
            if _JUNK.search(sentence) or len(sentence.split()) < _MIN_WORDS or key in seen:
                continue
            seen.add(key)
            kept.append(sentence)
            if len(kept) == max_sentences:
                return kept
    return kept


def augment_label(
    name: str,
    network: OsmSemanticNetwork | None,
    vocabulary: frozenset[str] = frozenset(),
    alias: str | None = None,
    context: str | None = None,
    max_sentences: int = 2,
) -> AugmentedLabel:
    """Augment one label name with OSM definitions.

    Args:
        name: raw label name (``"StorageTanks"``).
        network: the OSM Semantic Network; ``None`` embeds the bare name.
        vocabulary: words for segmenting glued names.
        alias: a display name to add (EuroSAT ``"Sea & Lake"`` for ``SeaLake``).
        context: extra text, e.g. a curated description.
        max_sentences: definition sentences kept.

    Returns:
        The augmented label; its ``text`` reads ``"storage tanks. <definitions>"``.
    """
    words = normalize_words(name, vocabulary)
    match = network.match(words) if network is not None else TagMatch()
    parts = [display_phrase(name, vocabulary)]
    if alias:
        parts.append(alias)
    if context:
        parts.append(context)
    if network is not None and match.uris:
        parts.extend(clean_definitions(network.definitions(match.uris), max_sentences))
    tags = tuple(network.concepts[u].tag for u in match.uris) if network is not None else ()
    return AugmentedLabel(name, tuple(words), tags, match.uris, match.qualifier, ". ".join(parts))
