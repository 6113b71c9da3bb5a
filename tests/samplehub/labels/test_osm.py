"""OSM tag matching and qualifier-aware structural similarity on a hand-made network
(samplehub.labels.osm; no ../shared needed)."""

import pytest

from samplehub.errors import LabelGraphError
from samplehub.labels.osm import OsmConcept, OsmSemanticNetwork, TagMatch
from samplehub.labels.taxonomy import label_vocabulary

TERM = "http://spatial.ucd.ie/lod/osn/term/"


def _concept(tag: str, links: tuple[str, ...] = ()) -> OsmConcept:
    key, _, value = tag.partition("=")
    uri = f"{TERM}k:{key}" + (f"/v:{value}" if value else "")
    return OsmConcept(uri, key, value or None, links={_uri(t) for t in links})


def _uri(tag: str) -> str:
    key, _, value = tag.partition("=")
    return f"{TERM}k:{key}" + (f"/v:{value}" if value else "")


@pytest.fixture()
def network() -> OsmSemanticNetwork:
    tags = {
        "landuse=residential": (),
        "landuse=agriculture": (),
        "railway": (),
        "railway=station": (),
        "waterway": ("bridge", "waterway=river"),
        "waterway=river": (),
        "bridge": (),
        "natural=desert": (),
    }
    concepts = {_uri(t): _concept(t, links) for t, links in tags.items()}
    return OsmSemanticNetwork(concepts, min_in_links=0, narrower_decay=0.5)


def test_match_returns_the_qualifier_left_outside_the_tag(network: OsmSemanticNetwork) -> None:
    dense = network.match(["dense", "residential"])
    assert dense.uris == (_uri("landuse=residential"),) and dense.qualifier == ("dense",)
    # generic head words are not qualifiers: "residential land" is the tag itself
    assert network.match(["residential", "land"]).qualifier == ()
    assert network.match(["chaparral"]) == TagMatch()


def test_key_value_phrases_and_al_adjectives_match(network: OsmSemanticNetwork) -> None:
    assert network.match(["railway", "station"]).uris == (_uri("railway=station"),)
    assert network.match(["agricultural"]).uris == (_uri("landuse=agriculture"),)
    assert network.match(["railway"]).uris == (_uri("railway"),)


def test_structural_similarity_discounts_narrower_hops(network: OsmSemanticNetwork) -> None:
    dense = network.match(["dense", "residential"])
    dense_again = network.match(["dense", "residential", "area"])
    medium = network.match(["medium", "residential"])
    whole = network.match(["residential"])
    assert network.structural_similarity(dense, dense_again) == 1.0
    assert network.structural_similarity(dense, whole) == pytest.approx(0.5)  # narrower
    assert network.structural_similarity(dense, medium) == pytest.approx(0.25)  # siblings
    assert network.structural_similarity(dense, TagMatch()) is None


def test_cocited_tags_are_related(network: OsmSemanticNetwork) -> None:
    river, bridge = network.match(["river"]), network.match(["bridge"])
    desert = network.match(["desert"])
    related = network.structural_similarity(river, bridge)
    assert related is not None and related > 0  # the waterway page cites both
    assert network.structural_similarity(river, desert) == 0.0


def test_narrower_decay_is_validated() -> None:
    with pytest.raises(LabelGraphError, match="narrower_decay"):
        OsmSemanticNetwork({}, narrower_decay=0.0)


def test_glued_names_written_apart_elsewhere_are_not_vocabulary_words() -> None:
    data = {
        "million_aid": {"labels": ["parking_lot"]},
        "ucm": {"labels": ["parkinglot", "airplane"]},
        "rsi": {"labels": ["parkinglot", "airplane"]},
    }
    vocabulary = label_vocabulary(data)
    assert "airplane" in vocabulary  # one word, written by two datasets
    assert "parkinglot" not in vocabulary  # NWPU-style parking_lot exists: a glued name
    assert {"parking", "lot"} <= vocabulary
