"""Label-name normalisation (samplehub.labels.names)."""

import pytest

from samplehub.errors import LabelGraphError
from samplehub.labels.names import (
    canonical_name,
    normalize_words,
    segment,
    singular,
    split_words,
    strip_ordinal,
    strip_ordinals,
)

VOCAB = frozenset(
    {"dense", "residential", "storage", "tank", "mobile", "home", "park", "golf", "course"}
)


def test_split_words_handles_camel_case_separators_and_ampersand() -> None:
    assert split_words("SeaLake") == ["sea", "lake"]
    assert split_words("Sea & Lake") == ["sea", "lake"]
    assert split_words("railwayStation") == ["railway", "station"]
    assert split_words("bare-soil") == ["bare", "soil"]


def test_glued_names_are_segmented_only_with_known_pieces() -> None:
    assert segment("denseresidential", VOCAB) == ["dense", "residential"]
    assert segment("mobilehomepark", VOCAB) == ["mobile", "home", "park"]
    assert segment("chaparral", VOCAB) == ["chaparral"]


def test_normalize_reduces_plurals_and_us_spelling() -> None:
    assert normalize_words("storagetanks", VOCAB) == ["storage", "tank"]
    assert normalize_words("Harbor") == ["harbour"]
    assert (
        singular("grass") == "grass"
        and singular("ferries") == "ferry"
        and singular("tennis") == "tennis"
    )
    assert canonical_name("GolfCourse") == canonical_name("golf_course")


def test_name_without_letters_is_rejected() -> None:
    with pytest.raises(LabelGraphError, match="no letters"):
        split_words(" _-& ")


def test_unicode_names_normalise() -> None:
    assert split_words("Ｆｏｒｅｓｔ") == ["forest"]  # full-width letters (NFKC)
    assert split_words("Wald_Fläche") == ["wald", "fläche"]


@pytest.mark.parametrize(
    ("shipped", "words"),
    [
        ("aGrass", ["grass"]),
        ("bField", ["field"]),
        ("cIndustry", ["industry"]),
        ("dRiverLake", ["river", "lake"]),
        ("01_forest", ["forest"]),
        ("01forest", ["forest"]),
        ("3-rivers", ["river"]),
        ("StorageTanks", ["storage", "tank"]),
        ("parking_lots", ["parking", "lot"]),
    ],
)
def test_ordinal_prefixes_camel_case_separators_and_plurals_normalise(
    shipped: str, words: list[str]
) -> None:
    assert normalize_words(shipped) == words


def test_unambiguous_ordinals_are_stripped_from_any_name() -> None:
    assert strip_ordinal("fResident") == "Resident"
    assert strip_ordinal("12 Sea Lake") == "Sea Lake"
    assert strip_ordinal("railwayStation") == "railwayStation"  # a word, not a letter
    assert strip_ordinal("SeaLake") == "SeaLake"
    assert strip_ordinal("42") == "42"  # nothing would be left


def test_letter_and_separator_is_an_ordinal_only_across_the_whole_dataset() -> None:
    assert strip_ordinals(["a-grass", "b-field", "c-industry"]) == {
        "a-grass": "grass",
        "b-field": "field",
        "c-industry": "industry",
    }
    # one such name is a word (``t-junction``); repeated letters are no ordinals either
    assert strip_ordinals(["t-junction", "road"]) == {"t-junction": "t-junction", "road": "road"}
    assert strip_ordinals(["a-b", "a-grass"])["a-grass"] == "a-grass"
    assert strip_ordinals(["aGrass", "01_forest"]) == {"aGrass": "Grass", "01_forest": "forest"}
