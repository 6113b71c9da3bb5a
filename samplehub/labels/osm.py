"""The OSM Semantic Network: label-to-tag matching, definitions and co-citation similarity.

Main paper, section 3.3.1: label text is augmented with descriptions from an external
source, and *structural similarity* is "the degree of association between two label
entities within the geographic knowledge graph", computed on the OSM Semantic Network
by a co-occurrence (co-citation) algorithm (Ballatore et al., 2013).

Data: ``osm_semantic_network.skos.rdf.gz`` — a SKOS graph of ~4,400 OpenStreetMap keys
and tags extracted from the OSM wiki, with English definitions and ~14,600 wiki-link
edges. It is parsed with the standard-library XML parser (no RDF dependency).

Attribution (derived data must keep it): see :data:`OSM_ATTRIBUTION`.

Structural similarity (co-citation, Small 1973): two tags are related when the same wiki
pages link to both. With ``In(t)`` the set of pages linking to tag ``t``::

    struct(t, u) = |C(t) & C(u)| / sqrt(|C(t)| * |C(u)|)        (Salton cosine)

where ``C(t) = In(t) | {t}`` (a tag cites itself, so a direct link ``t -> u`` counts as one
co-citation). The network is sparse: many tags that scene labels match have one or no
incoming link (``natural=desert`` 0, ``aeroway=runway`` 1, ``natural=lake`` 1), so their
cosine is 0 against almost everything. For such *sparse* tags (``|In(t)| <
min_in_links``) the citation set is smoothed with the tag's own outgoing links, its SKOS
``broader`` key (tags of one key, e.g. all ``landuse=*``, share it) and ``related``
concepts: ``C(t) = In(t) | Out(t) | Broader(t) | Related(t) | {t}``. The numbers behind
this choice come from :meth:`OsmSemanticNetwork.sparsity_report` and are recorded in
``bench/results/label_merge.json`` (``osm_sparsity``, ``structure_no_smoothing``).

Co-citation compares *tags*, but many scene labels name a narrower concept than any tag:
dense, medium and sparse residential all match ``landuse=residential`` through the word
``residential``, so a tag-level score of 1.0 cannot tell them apart. :meth:`match`
therefore also returns the label's *qualifier*, its non-generic words outside the matched
phrase (``dense``), and the label is read as a SKOS ``narrower`` concept of its tags.
Label-level structural similarity discounts each narrower hop between the two labels::

    struct(A, B) = max_{t in T(A), u in T(B)} cocitation(t, u) * decay ** hops(A, B)

with ``hops = 0`` when both labels carry the same qualifier (``dense residential`` and
``denseresidential``), otherwise the number of qualified labels among the two: ``dense
residential`` vs ``residential`` is one hop (narrower/broader), ``dense residential`` vs
``medium residential`` two (siblings under ``landuse=residential``). ``decay`` is
``narrower_decay`` (``conf/graph/*.yaml``); its effect on precision is in
``bench/results/label_merge.json``.
"""

from __future__ import annotations

import gzip
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from samplehub.errors import LabelGraphError, SourceNotFoundError

OSM_ATTRIBUTION = (
    "Label descriptions and structural similarity derived from the OSM Semantic Network "
    "(Ballatore, Bertolotto & Wilson 2013, 'Geographic knowledge extraction and semantic "
    "similarity in OpenStreetMap', KAIS 37(1)), extracted from the OpenStreetMap Wiki "
    "(c) OpenStreetMap contributors, licensed CC BY-SA 2.0 "
    "(https://creativecommons.org/licenses/by-sa/2.0/)."
)

_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_SKOS = "{http://www.w3.org/2004/02/skos/core#}"
_OSNP = "{http://spatial.ucd.ie/lod/osn/property/}"
_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_TERM = re.compile(r"/lod/osn/term/k:(?P<key>[^/#]+)(?:/v:(?P<value>[^/#]+))?$")

#: Keys whose tags describe things visible from above; matches under other keys
#: (``abutters``, ``room``, ``usage``, ``buoy:lateral``, ...) are not land cover.
MAP_FEATURE_KEYS = frozenset(
    {
        "aeroway",
        "amenity",
        "barrier",
        "bridge",
        "building",
        "generator:source",
        "highway",
        "historic",
        "junction",
        "landuse",
        "leisure",
        "man_made",
        "military",
        "natural",
        "place",
        "power",
        "public_transport",
        "railway",
        "route",
        "sport",
        "tourism",
        "water",
        "waterway",
        "wetland",
    }
)


#: Head words too generic to stand for a longer label on their own.
GENERIC_WORDS = frozenset(
    {
        "land",
        "area",
        "region",
        "zone",
        "site",
        "field",
        "station",
        "plant",
        "ground",
        "lot",
        "space",
        "place",
        "home",
        "court",
        "marking",
        "yard",
        "park",
        "track",
        "power",
        "cross",
        "public",
        "building",
    }
)


#: Shortest noun tried for an ``-al`` adjective (``coastal`` -> ``coast``, not ``rur``).
_MIN_NOUN = 5


@dataclass(frozen=True)
class TagMatch:
    """The OSM tags naming a label and the label words they leave out.

    Attributes:
        uris: concept URIs of the matched tags (empty: the label has no OSM match).
        qualifier: non-generic label words outside the matched phrase (``("dense",)``
            for ``dense residential`` -> ``landuse=residential``); non-empty means the
            label is narrower than its tags.
    """

    uris: tuple[str, ...] = ()
    qualifier: tuple[str, ...] = ()


@dataclass
class OsmConcept:
    """One OSM key or tag of the semantic network.

    Attributes:
        uri: concept URI, e.g. ``http://spatial.ucd.ie/lod/osn/term/k:waterway/v:river``.
        key: OSM key (``waterway``).
        value: OSM value (``river``), ``None`` for a key concept.
        definitions: English definitions, as given.
        links: URIs this concept's wiki page links to (``osnp:link``), redirects resolved.
        broader: SKOS ``broader`` URIs (the key of a tag).
        related: SKOS ``related`` URIs.
        redirect: URI this concept redirects to, if any.
    """

    uri: str
    key: str
    value: str | None
    definitions: list[str] = field(default_factory=list)
    links: set[str] = field(default_factory=set)
    broader: set[str] = field(default_factory=set)
    related: set[str] = field(default_factory=set)
    redirect: str | None = None

    @property
    def tag(self) -> str:
        """``key=value`` (or the bare key)."""
        return f"{self.key}={self.value}" if self.value else self.key


class OsmSemanticNetwork:
    """Parsed OSM Semantic Network with a word index over tag values.

    Args:
        concepts: concepts by URI.
        min_in_links: a tag with fewer incoming links is *sparse* and gets the smoothed
            citation set described in the module docstring.
        narrower_decay: factor per narrower hop in the label-level structural similarity
            (module docstring); ``1.0`` ignores qualifiers.

    Raises:
        LabelGraphError: ``narrower_decay`` outside ``(0, 1]``.
    """

    def __init__(
        self,
        concepts: dict[str, OsmConcept],
        min_in_links: int = 3,
        narrower_decay: float = 0.5,
    ) -> None:
        if not 0 < narrower_decay <= 1:
            raise LabelGraphError(f"narrower_decay must be in (0, 1], got {narrower_decay}")
        self.concepts = concepts
        self.min_in_links = min_in_links
        self.narrower_decay = narrower_decay
        self.in_links: dict[str, set[str]] = {uri: set() for uri in concepts}
        for concept in concepts.values():
            for target in concept.links:
                if target in self.in_links and target != concept.uri:
                    self.in_links[target].add(concept.uri)
        self._by_name: dict[str, list[str]] = {}
        self._by_tag: dict[str, str] = {}
        keys_first = sorted(concepts.values(), key=lambda c: c.value is not None)
        for concept in keys_first:
            if concept.key in MAP_FEATURE_KEYS:
                name = (concept.value or concept.key).lower()
                self._by_name.setdefault(name, []).append(concept.uri)
                if concept.value:
                    self._by_tag.setdefault(f"{concept.key}_{name}", concept.uri)
        self._citations: dict[str, frozenset[str]] = {}

    @classmethod
    def from_rdf(
        cls, path: str | Path, min_in_links: int = 3, narrower_decay: float = 0.5
    ) -> OsmSemanticNetwork:
        """Parse ``osm_semantic_network.skos.rdf.gz`` (gzip or plain RDF/XML).

        Raises:
            SourceNotFoundError: the file does not exist.
            LabelGraphError: the file is not RDF/XML.
        """
        path = Path(path)
        if not path.is_file():
            raise SourceNotFoundError(
                f"OSM Semantic Network not found at {path}; set graph.osm_network in "
                "conf/graph/*.yaml to the osm_semantic_network.skos.rdf.gz file"
            )
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rb") as handle:
                root = ET.parse(handle).getroot()
        except (ET.ParseError, OSError) as exc:
            raise LabelGraphError(f"cannot parse OSM Semantic Network {path}: {exc}") from exc
        concepts: dict[str, OsmConcept] = {}
        redirects: dict[str, str] = {}
        for description in root.iter(f"{_RDF}Description"):
            uri = description.get(f"{_RDF}about", "")
            for child in description:
                if child.tag == f"{_OSNP}redirect":
                    redirects[uri] = child.get(f"{_RDF}resource", "")
            match = _TERM.search(uri)
            if match is None:
                continue
            concept = concepts.setdefault(
                uri, OsmConcept(uri=uri, key=match["key"], value=match["value"])
            )
            _read_properties(concept, description)
            concept.redirect = redirects.get(uri)
        for concept in concepts.values():
            concept.links = {_resolve(t, redirects) for t in concept.links} - {concept.uri}
        return cls(concepts, min_in_links=min_in_links, narrower_decay=narrower_decay)

    def vocabulary(self) -> frozenset[str]:
        """Lower-case English words of tag values and definitions (for name segmentation)."""
        words: set[str] = set()
        for concept in self.concepts.values():
            words.update(re.findall(r"[a-z]{3,}", (concept.value or "").lower()))
            for text in concept.definitions:
                words.update(re.findall(r"[a-z]{3,}", text.lower()))
        return frozenset(words)

    def match(self, words: list[str]) -> TagMatch:
        """OSM tags (or keys) whose value names the label, longest phrase first.

        The whole phrase is tried first (``storage tank`` -> ``man_made=storage_tank``);
        if nothing matches, shorter contiguous sub-phrases, longest and leftmost first
        (``parking lot`` -> ``amenity=parking``), skipping sub-phrases that are only a
        generic head word (:data:`GENERIC_WORDS`: ``bare land`` must not match
        ``natural=land``). A phrase names a tag by its value (``river``), by ``key value``
        (``railway station`` -> ``railway=station``), for an ``-al`` adjective by its
        noun (``agricultural`` -> ``landuse=agriculture``) and for a noun without a tag of
        its own by its ``-al``/``-ial`` adjective (``industry`` -> ``landuse=industrial``,
        ``resident`` -> ``landuse=residential``, as RSSCN7 names its folders). Redirects
        are followed (``landuse=farmland`` -> ``landuse=farm``). Only tags and keys of
        :data:`MAP_FEATURE_KEYS` are considered.

        Args:
            words: normalised label words (see :func:`samplehub.labels.names.normalize_words`).

        Returns:
            The matched concept URIs and the qualifier (label words left out of the
            matched phrase, generic words excluded); empty when nothing matches.
        """
        for size in range(len(words), 0, -1):
            for start in range(len(words) - size + 1):
                phrase = words[start : start + size]
                if size < len(words) and "_".join(phrase) in GENERIC_WORDS:
                    continue
                found = self._lookup(phrase)
                if found:
                    uris = list(found)
                    for uri in found:
                        target = self.concepts[uri].redirect
                        if target in self.concepts and target not in uris:
                            uris.append(target)
                    rest = words[:start] + words[start + size :]
                    qualifier = tuple(w for w in rest if w not in GENERIC_WORDS)
                    return TagMatch(tuple(uris), qualifier)
        return TagMatch()

    def _lookup(self, phrase: list[str]) -> list[str]:
        """Concepts named by one phrase.

        Tried in order: the tag value (or its plural), ``key value``, the ``-al`` noun, and
        the noun of an ``-al``/``-ial`` adjective.
        """
        name = "_".join(phrase)
        found = self._by_name.get(name, []) + self._by_name.get(f"{name}s", [])
        if not found and name in self._by_tag:
            found = [self._by_tag[name]]
        if not found and len(phrase) == 1 and name.endswith("al"):
            stem = name[:-2]
            for noun in (f"{stem}e", stem):
                if len(noun) >= _MIN_NOUN and self._by_name.get(noun):
                    return list(self._by_name[noun])
        if not found and len(phrase) == 1 and len(name) >= _MIN_NOUN:
            for adjective in (f"{name}al", f"{name}ial", f"{name[:-1]}al", f"{name[:-1]}ial"):
                if self._by_name.get(adjective):
                    return list(self._by_name[adjective])
        return found

    def citations(self, uri: str) -> frozenset[str]:
        """Citation set ``C(t)`` of a tag, smoothed for sparse tags (see module docstring)."""
        cached = self._citations.get(uri)
        if cached is not None:
            return cached
        concept = self.concepts[uri]
        cited = set(self.in_links[uri]) | {uri}
        if len(self.in_links[uri]) < self.min_in_links:
            cited |= concept.links | concept.broader | concept.related
        result = frozenset(cited)
        self._citations[uri] = result
        return result

    def cocitation(self, uri_a: str, uri_b: str) -> float:
        """Salton-normalised co-citation of two tags, in [0, 1]."""
        if uri_a == uri_b:
            return 1.0
        cit_a, cit_b = self.citations(uri_a), self.citations(uri_b)
        return len(cit_a & cit_b) / math.sqrt(len(cit_a) * len(cit_b))

    def structural_similarity(self, a: TagMatch, b: TagMatch) -> float | None:
        """Label-level structural similarity (module docstring); ``None`` for a tagless label.

        Best co-citation between the two labels' tags, times ``narrower_decay`` per
        narrower hop: none when both labels carry the same qualifier, else one per
        qualified label.
        """
        if not a.uris or not b.uris:
            return None
        best = max(self.cocitation(u, v) for u in a.uris for v in b.uris)
        hops = 0 if a.qualifier == b.qualifier else bool(a.qualifier) + bool(b.qualifier)
        return best * self.narrower_decay**hops

    def definitions(self, uris: Iterable[str]) -> list[str]:
        """English definitions of the given tags, in order."""
        return [text for uri in uris for text in self.concepts[uri].definitions]

    def sparsity_report(self, uris: Iterable[str]) -> dict[str, float]:
        """How sparse the link graph is around the given tags (numbers for the docs).

        Returns:
            ``tags``, ``no_in_links`` and ``sparse`` (fewer than ``min_in_links``) counts,
            and the mean citation-set size before and after smoothing.
        """
        unique = sorted(set(uris))
        raw = [len(self.in_links[u]) + 1 for u in unique]
        smoothed = [len(self.citations(u)) for u in unique]
        return {
            "tags": len(unique),
            "no_in_links": sum(1 for u in unique if not self.in_links[u]),
            "sparse": sum(1 for u in unique if len(self.in_links[u]) < self.min_in_links),
            "mean_citations_raw": sum(raw) / max(len(raw), 1),
            "mean_citations_smoothed": sum(smoothed) / max(len(smoothed), 1),
        }


def _resolve(uri: str, redirects: dict[str, str]) -> str:
    uri = uri.split("#", 1)[0]
    seen: set[str] = set()
    while uri in redirects and uri not in seen:
        seen.add(uri)
        uri = redirects[uri].split("#", 1)[0]
    return uri


def _read_properties(concept: OsmConcept, description: ET.Element) -> None:
    for child in description:
        resource = child.get(f"{_RDF}resource")
        if child.tag == f"{_SKOS}definition" and child.get(_LANG) == "en" and child.text:
            concept.definitions.append(child.text)
        elif child.tag == f"{_OSNP}link" and resource:
            concept.links.add(resource)
        elif child.tag == f"{_SKOS}broader" and resource and not resource.endswith("rootConcept"):
            concept.broader.add(resource)
        elif child.tag == f"{_SKOS}related" and resource:
            concept.related.add(resource.split("#", 1)[0])
