"""Label-name normalisation (samplehub.labels.names)."""

import pytest

from samplehub.errors import LabelGraphError
from samplehub.labels.names import canonical_name, normalize_words, segment, singular, split_words

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
