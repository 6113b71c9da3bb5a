"""The labelling view of one dataset: 2-D points, SLIC masks, labels, and publishing them.

Paper: ``../shared/papers/unsupervised-labelling-cnn-gnn.txt``, section 2.8 (front end and
back end) and section 3.1. The offline pipeline saves the 2-D coordinates (UMAP of the
Hungarian chip similarity for chips, UMAP of the node embeddings for segments) and the
SLIC label images; the page reads them to draw points, thumbnails and masks, and a person
labels the chips or segments brushed in the 2-D view. Publishing writes the labels as a
new folder-per-class dataset under ``watch_root`` and ingests it, so the labels become
catalog samples like any other dataset's.

Layout under the home (``<home>/labelling/<dataset>/``)::

    current                 name of the live version folder, replaced atomically
    v-<stamp>/chips.parquet sample_id (str), x, y
    v-<stamp>/segments.parquet  sample_id (str), segment (int32), x, y
    v-<stamp>/masks.npz     one (H, W) int32 SLIC label image per chip, keyed by sample id
    v-<stamp>/view.json     dataset, counts, created_at
    labels.json             label actions and undone actions; kept when the view is rewritten

Every write is a temporary file or folder renamed into place under a file lock, so the
API's worker processes share one state and a reader never sees half a write.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from samplehub.errors import ConfigError, LabellingError, LabellingViewNotFoundError

if TYPE_CHECKING:
    from samplehub.ingest import IngestReport
    from samplehub.repository import Repository

log = logging.getLogger(__name__)

LABELLING_DIR = "labelling"
CURRENT, LABELS, META = "current", "labels.json", "view.json"
CHIPS, SEGMENTS, MASKS = "chips.parquet", "segments.parquet", "masks.npz"
MANIFEST = ".labelling.json"
"""Provenance of a published dataset: a hidden file, so the folder-tree source skips it."""
MASK_DIR = ".masks"
"""Segment-label masks of a published dataset (hidden: the ingest reads no masks)."""

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _-]{0,63}$")
"""A label becomes a class folder name, so it keeps to characters every filesystem takes."""

Mode = Literal["chip", "segment"]
SegmentKey = tuple[str, int]


def views_root(home: str | os.PathLike[str]) -> Path:
    """``<home>/labelling``."""
    return Path(home) / LABELLING_DIR


def check_name(name: str, what: str = "dataset") -> str:
    """``name`` when it is a safe folder name.

    Raises:
        LabellingError: empty, hidden, or characters other than letters, digits, ``_.-``.
    """
    if not isinstance(name, str) or not NAME.match(name):
        raise LabellingError(
            f"{what} name {name!r} must start with a letter or digit and hold only letters, "
            "digits, '_', '.' and '-' (at most 128 characters)"
        )
    return name


def check_label(label: str) -> str:
    """A label name, stripped.

    Raises:
        LabellingError: empty, or not letters, digits, spaces, ``_`` and ``-``.
    """
    cleaned = label.strip() if isinstance(label, str) else label
    if not isinstance(cleaned, str) or not LABEL.match(cleaned):
        raise LabellingError(
            f"label {label!r} must start with a letter or digit and hold only letters, digits, "
            "spaces, '_' and '-' (at most 64 characters); it becomes a class folder name"
        )
    return cleaned


# --- input validation --------------------------------------------------------------------


def _require(frame: pd.DataFrame, name: str, columns: Iterable[str]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise LabellingError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise LabellingError(
            f"{name}: missing column(s) {missing}; found {list(frame.columns)}"
        )


def _rows(mask: np.ndarray) -> list[int]:
    return [int(i) for i in np.flatnonzero(mask)[:5]]


def _ids(frame: pd.DataFrame, name: str) -> pd.Series:
    """The ``sample_id`` column as decimal strings (catalog ids are 63-bit integers)."""
    ids = frame["sample_id"]
    if ids.isna().any():
        raise LabellingError(
            f"{name}: column 'sample_id' is empty at rows {_rows(ids.isna().to_numpy())}"
        )
    text = ids.astype(str).str.strip()
    bad = ~text.str.fullmatch(r"\d{1,19}")
    if bad.any():
        raise LabellingError(
            f"{name}: column 'sample_id' must hold catalog sample ids (decimal integers); "
            f"rows {_rows(bad.to_numpy())} hold {text[bad].head(3).tolist()}"
        )
    return text.reset_index(drop=True)


def _coordinates(frame: pd.DataFrame, name: str) -> dict[str, np.ndarray]:
    out = {}
    for column in ("x", "y"):
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            raise LabellingError(
                f"{name}: column {column!r} must hold finite numbers; rows {_rows(bad)} do not"
            )
        out[column] = values
    return out


def validate_chips(chips: pd.DataFrame) -> pd.DataFrame:
    """Chips as stored: ``sample_id`` (str), ``x``, ``y`` (float64).

    Raises:
        LabellingError: a missing column, no rows, a repeated or non-integer id, a
            coordinate that is not a finite number; the message names the column and rows.
    """
    _require(chips, "chips", ("sample_id", "x", "y"))
    if chips.empty:
        raise LabellingError("chips: no rows; a labelling view needs at least one chip")
    ids = _ids(chips, "chips")
    repeated = ids.duplicated()
    if repeated.any():
        raise LabellingError(
            f"chips: column 'sample_id' repeats {ids[repeated].head(3).tolist()}; one row per chip"
        )
    return pd.DataFrame({"sample_id": ids, **_coordinates(chips, "chips")})


def validate_segments(segments: pd.DataFrame, chips: pd.DataFrame) -> pd.DataFrame:
    """Segments as stored: ``sample_id`` (str), ``segment`` (int32), ``x``, ``y`` (float64).

    Raises:
        LabellingError: a missing column, a chip not in ``chips``, a segment id that is not
            an integer, a repeated (sample_id, segment) pair, a bad coordinate.
    """
    _require(segments, "segments", ("sample_id", "segment", "x", "y"))
    ids = _ids(segments, "segments") if len(segments) else pd.Series([], dtype=str)
    unknown = ~ids.isin(set(chips["sample_id"]))
    if unknown.any():
        raise LabellingError(
            f"segments: column 'sample_id' names chips that are not in chips: "
            f"{sorted(set(ids[unknown]))[:5]}"
        )
    numbers = pd.to_numeric(segments["segment"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers) | (numbers != np.round(numbers))
    if bad.any():
        raise LabellingError(
            f"segments: column 'segment' must hold integer SLIC label ids; rows {_rows(bad)} do not"
        )
    xy = _coordinates(segments, "segments")
    out = pd.DataFrame({"sample_id": ids, "segment": numbers.astype(np.int32), **xy})
    repeated = out.duplicated(["sample_id", "segment"])
    if repeated.any():
        first = out[repeated].iloc[0]
        raise LabellingError(
            f"segments: (sample_id, segment) ({first['sample_id']}, {int(first['segment'])}) "
            "appears more than once; one row per segment"
        )
    return out


def validate_masks(
    masks: Mapping[str, np.ndarray], chips: pd.DataFrame, segments: pd.DataFrame
) -> dict[str, np.ndarray]:
    """Masks as stored: int32 (H, W) per chip, keyed by the chip's sample id string.

    Raises:
        LabellingError: a key that is not a chip, a chip with segments but no mask, a
            mask that is not a 2-D integer array, a segment id its mask does not hold.
    """
    if not isinstance(masks, Mapping):
        raise LabellingError(f"masks must be a dict of sample_id -> (H, W) array, got "
                             f"{type(masks).__name__}")
    out = {str(k).strip(): v for k, v in masks.items()}
    known = set(chips["sample_id"])
    unknown = sorted(set(out) - known)
    if unknown:
        raise LabellingError(f"masks: keys {unknown[:5]} are not sample ids of chips")
    by_chip = {str(k): g["segment"].to_numpy() for k, g in segments.groupby("sample_id")}
    missing = sorted(set(by_chip) - set(out))
    if missing:
        raise LabellingError(f"masks: no mask for chips {missing[:5]}, which have segments")
    for key, mask in out.items():
        array = np.asarray(mask)
        if array.ndim != 2 or array.dtype.kind not in "iu":
            raise LabellingError(
                f"masks[{key!r}]: expected a 2-D integer SLIC label image, got "
                f"{array.dtype} of shape {array.shape}"
            )
        absent = np.setdiff1d(by_chip.get(key, np.empty(0, np.int32)), np.unique(array))
        if absent.size:
            raise LabellingError(
                f"masks[{key!r}]: segments {absent[:5].tolist()} of the segments table are not "
                "in this mask"
            )
        out[key] = array.astype(np.int32, copy=False)
    return out


# --- files -------------------------------------------------------------------------------


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created), held by this process while open."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary sibling and rename it over ``path``."""
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_labelling_view(
    home: str | os.PathLike[str],
    dataset: str,
    chips: pd.DataFrame,
    segments: pd.DataFrame,
    masks: Mapping[str, np.ndarray],
) -> Path:
    """Store the labelling view of ``dataset`` (section 2.8, back end: "saved to files").

    A rewrite (the pipeline ran again) replaces the points and masks as one version and
    keeps the labels already applied: they are keyed by stable sample ids.

    Args:
        home: the SampleHub home.
        dataset: the view's name, usually the chips' catalog dataset.
        chips: ``sample_id`` (catalog id of a chip), ``x``, ``y`` (chip-level UMAP).
        segments: ``sample_id``, ``segment`` (SLIC label id in that chip's mask), ``x``,
            ``y`` (segment-level UMAP); may have no rows.
        masks: ``{sample_id: (H, W) int SLIC label image}``; every chip with segments needs one.

    Returns:
        The folder of the stored version.

    Raises:
        LabellingError: bad input; the message names the column or key.
    """
    check_name(dataset)
    chips = validate_chips(chips)
    segments = validate_segments(segments, chips)
    arrays = validate_masks(masks, chips, segments)
    root = views_root(home) / dataset
    root.mkdir(parents=True, exist_ok=True)
    version = f"v-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    staging = root / f".{version}"
    staging.mkdir()
    try:
        chips.to_parquet(staging / CHIPS, index=False)
        segments.to_parquet(staging / SEGMENTS, index=False)
        np.savez_compressed(staging / MASKS, **arrays)  # type: ignore[arg-type]  # stub: ArrayLike
        meta = {"dataset": dataset, "chips": len(chips), "segments": len(segments),
                "created_at": datetime.now(UTC).isoformat()}
        (staging / META).write_text(json.dumps(meta, indent=2))
        os.replace(staging, root / version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    with file_lock(root / ".lock"):
        previous = (root / CURRENT).read_text().strip() if (root / CURRENT).is_file() else None
        write_text_atomic(root / CURRENT, version)
    # The version before the previous one goes: a reader that read ``current`` a moment
    # ago may still be opening the previous version's files.
    for old in root.glob("v-*"):
        if old.name not in (version, previous):
            shutil.rmtree(old, ignore_errors=True)
    log.info("labelling view %s: %d chips, %d segments in %s", dataset, len(chips),
             len(segments), version)
    return root / version


# --- labels ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelAction:
    """One label applied to a selection (``label`` None clears the selection's labels)."""

    mode: Mode
    label: str | None
    chips: tuple[str, ...] = ()
    segments: tuple[SegmentKey, ...] = ()
    at: str = ""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {**asdict(self), "chips": list(self.chips),
                "segments": [[s, int(g)] for s, g in self.segments]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabelAction:
        """From :meth:`to_json`."""
        return cls(
            mode=data["mode"], label=data["label"], chips=tuple(data["chips"]),
            segments=tuple((str(s), int(g)) for s, g in data["segments"]), at=data["at"],
        )


@dataclass(frozen=True)
class LabelState:
    """Labels after replaying the actions in order.

    Attributes:
        chips: label by chip sample id.
        segments: label by (chip sample id, segment id).
        done: actions that undo can take back.
        undone: actions that redo can apply again.
    """

    chips: dict[str, str] = field(default_factory=dict)
    segments: dict[SegmentKey, str] = field(default_factory=dict)
    done: int = 0
    undone: int = 0


class LabelStore:
    """Label actions applied in the browser, with undo and redo, in one JSON file.

    The labels are the actions replayed in order, so undo is dropping the last action
    (kept for redo until a new action is applied) and no label state is stored twice.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = path.with_name(f".{path.name}.lock")

    def _load(self) -> tuple[list[LabelAction], list[LabelAction]]:
        if not self.path.is_file():
            return [], []
        data = json.loads(self.path.read_text())
        return ([LabelAction.from_json(a) for a in data["actions"]],
                [LabelAction.from_json(a) for a in data["undone"]])

    def _save(self, actions: list[LabelAction], undone: list[LabelAction]) -> None:
        write_text_atomic(self.path, json.dumps(
            {"actions": [a.to_json() for a in actions], "undone": [a.to_json() for a in undone]}
        ))

    @staticmethod
    def replay(actions: list[LabelAction], undone: list[LabelAction]) -> LabelState:
        """The labels ``actions`` leave."""
        state = LabelState(done=len(actions), undone=len(undone))
        for action in actions:
            for chip in action.chips:
                if action.label is None:
                    state.chips.pop(chip, None)
                else:
                    state.chips[chip] = action.label
            for key in action.segments:
                if action.label is None:
                    state.segments.pop(key, None)
                else:
                    state.segments[key] = action.label
        return state

    def state(self) -> LabelState:
        """The current labels."""
        with file_lock(self.lock):
            return self.replay(*self._load())

    def apply(self, action: LabelAction) -> LabelState:
        """Append ``action``; the redo history is dropped, as in any editor."""
        with file_lock(self.lock):
            actions, _ = self._load()
            actions.append(action)
            self._save(actions, [])
            return self.replay(actions, [])

    def undo(self) -> LabelState:
        """Take back the last action (nothing to undo: the state unchanged)."""
        with file_lock(self.lock):
            actions, undone = self._load()
            if actions:
                undone.append(actions.pop())
                self._save(actions, undone)
            return self.replay(actions, undone)

    def redo(self) -> LabelState:
        """Apply the last undone action again (nothing undone: the state unchanged)."""
        with file_lock(self.lock):
            actions, undone = self._load()
            if undone:
                actions.append(undone.pop())
                self._save(actions, undone)
            return self.replay(actions, undone)


@dataclass(frozen=True)
class Progress:
    """How much of the view is labelled; ``by_label`` counts chips and segments per label."""

    chips_total: int
    chips_labelled: int
    segments_total: int
    segments_labelled: int
    by_label: dict[str, dict[str, int]]
    can_undo: bool
    can_redo: bool


# --- the view ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LabellingView:
    """One stored labelling view, opened at its live version.

    Attributes:
        dataset: the view's name.
        root: ``<home>/labelling/<dataset>``.
        folder: the live version's folder.
        chips: ``sample_id`` (str), ``x``, ``y``.
        segments: ``sample_id`` (str), ``segment`` (int32), ``x``, ``y``.
        created_at: when the version was written (ISO 8601).
    """

    dataset: str
    root: Path
    folder: Path
    chips: pd.DataFrame
    segments: pd.DataFrame
    created_at: str

    @classmethod
    def open(cls, home: str | os.PathLike[str], dataset: str) -> LabellingView:
        """The live version of ``dataset``'s view.

        Raises:
            LabellingViewNotFoundError: no view of that name under ``home``.
        """
        root = views_root(home) / check_name(dataset)
        pointer = root / CURRENT
        if not pointer.is_file():
            raise LabellingViewNotFoundError(
                f"no labelling view {dataset!r} under {views_root(home)}; the labelling "
                "pipeline writes one (samplehub.labelling.view.write_labelling_view); "
                f"views there: {cls.names(home) or 'none'}"
            )
        folder = root / pointer.read_text().strip()
        meta = json.loads((folder / META).read_text())
        return cls(
            dataset=dataset, root=root, folder=folder,
            chips=pd.read_parquet(folder / CHIPS), segments=pd.read_parquet(folder / SEGMENTS),
            created_at=meta["created_at"],
        )

    @staticmethod
    def names(home: str | os.PathLike[str]) -> list[str]:
        """The stored views' names, sorted."""
        root = views_root(home)
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / CURRENT).is_file())

    @property
    def labels(self) -> LabelStore:
        """The view's label store (shared by every process serving it)."""
        return LabelStore(self.root / LABELS)

    def has_chip(self, sample_id: str) -> bool:
        """True when ``sample_id`` is a chip of the view."""
        return bool((self.chips["sample_id"] == str(sample_id)).any())

    def mask(self, sample_id: str) -> np.ndarray:
        """The (H, W) int32 SLIC label image of a chip.

        Raises:
            LabellingViewNotFoundError: the chip is not in the view or has no mask.
        """
        with np.load(self.folder / MASKS) as masks:
            if str(sample_id) not in masks.files:
                raise LabellingViewNotFoundError(
                    f"labelling view {self.dataset!r} has no mask for chip {sample_id!r}"
                )
            return np.asarray(masks[str(sample_id)])

    def check_chips(self, chips: Iterable[str]) -> tuple[str, ...]:
        """``chips`` as ids of this view.

        Raises:
            LabellingViewNotFoundError: some are not chips of the view (named).
        """
        wanted = tuple(str(c).strip() for c in chips)
        unknown = sorted(set(wanted) - set(self.chips["sample_id"]))
        if unknown:
            raise LabellingViewNotFoundError(
                f"labelling view {self.dataset!r} has no chips {unknown[:5]}"
            )
        return wanted

    def check_segments(self, segments: Iterable[SegmentKey]) -> tuple[SegmentKey, ...]:
        """``segments`` as (sample id, segment) keys of this view.

        Raises:
            LabellingViewNotFoundError: some are not segments of the view (named).
        """
        wanted = tuple((str(s).strip(), int(g)) for s, g in segments)
        known = set(zip(self.segments["sample_id"], self.segments["segment"].astype(int),
                        strict=True))
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise LabellingViewNotFoundError(
                f"labelling view {self.dataset!r} has no segments {unknown[:5]} "
                "(sample_id, segment)"
            )
        return wanted

    def apply_label(
        self,
        mode: Mode,
        label: str | None,
        chips: Iterable[str] = (),
        segments: Iterable[SegmentKey] = (),
    ) -> LabelState:
        """Label a brushed selection (section 3.1): chips in chip mode, segments in segment mode.

        Args:
            mode: ``chip`` or ``segment``.
            label: the label name; None clears the selection's labels.
            chips: the selected chips' sample ids (chip mode).
            segments: the selected (sample id, segment) pairs (segment mode).

        Raises:
            LabellingError: an unknown mode, a bad label, an empty selection, or items of
                the other mode.
            LabellingViewNotFoundError: a selected item is not in the view.
        """
        if mode not in ("chip", "segment"):
            raise LabellingError(f"mode must be 'chip' or 'segment', got {mode!r}")
        name = None if label is None else check_label(label)
        picked_chips, picked_segments = self.check_chips(chips), self.check_segments(segments)
        selected, other = (
            (picked_chips, picked_segments) if mode == "chip" else (picked_segments, picked_chips)
        )
        if not selected:
            raise LabellingError(f"{mode} mode: the selection is empty; brush some {mode}s first")
        if other:
            raise LabellingError(
                f"{mode} mode labels {mode}s only; the request also names "
                f"{'segments' if mode == 'chip' else 'chips'}"
            )
        return self.labels.apply(LabelAction(
            mode=mode, label=name, chips=picked_chips, segments=picked_segments,
            at=datetime.now(UTC).isoformat(),
        ))

    def current(self, state: LabelState) -> LabelState:
        """``state`` restricted to the chips and segments of this version."""
        chips = set(self.chips["sample_id"])
        segments = set(zip(self.segments["sample_id"], self.segments["segment"].astype(int),
                           strict=True))
        return LabelState(
            chips={k: v for k, v in state.chips.items() if k in chips},
            segments={k: v for k, v in state.segments.items() if k in segments},
            done=state.done, undone=state.undone,
        )

    def progress(self, state: LabelState | None = None) -> Progress:
        """Labelled / total chips and segments, and counts per label."""
        state = self.current(state or self.labels.state())
        by_label: dict[str, dict[str, int]] = {}
        for kind, counts in (("chips", Counter(state.chips.values())),
                             ("segments", Counter(state.segments.values()))):
            for label, n in counts.items():
                by_label.setdefault(label, {"chips": 0, "segments": 0})[kind] = n
        return Progress(
            chips_total=len(self.chips), chips_labelled=len(state.chips),
            segments_total=len(self.segments), segments_labelled=len(state.segments),
            by_label=dict(sorted(by_label.items())),
            can_undo=state.done > 0, can_redo=state.undone > 0,
        )


# --- publish -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishReport:
    """What :func:`publish_labels` did.

    Attributes:
        dataset: the catalog dataset holding the labels (``<name>-v<version>``).
        path: its folder under ``watch_root``.
        version: the publish version of this view's labels.
        unchanged: the labels equal the latest published version's; nothing was written.
        chips_published: labelled chips written as samples of their class.
        chips_unlabelled: chips left out because they have no chip label (listed in the
            dataset's ``.labelling.json``).
        masks: chips whose labelled segments were written as a mask.
        labels: the chip labels (the dataset's classes).
        segment_labels: the mask legend, index 1 upwards (0 is unlabelled).
        ingest: the ingest run's report.
    """

    dataset: str
    path: Path
    version: int
    unchanged: bool
    chips_published: int
    chips_unlabelled: int
    masks: int
    labels: tuple[str, ...]
    segment_labels: tuple[str, ...]
    ingest: IngestReport


def fingerprint(state: LabelState) -> str:
    """A hash of the labels alone (not of their history): equal labels, equal prints."""
    text = json.dumps([sorted(state.chips.items()),
                       sorted([s, g, label] for (s, g), label in state.segments.items())])
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def published_versions(watch_root: Path, base: str) -> dict[int, Path]:
    """Published folders ``<base>-v<n>`` under ``watch_root`` by version."""
    pattern = re.compile(rf"^{re.escape(base)}-v(\d+)$")
    found = {}
    for folder in watch_root.iterdir() if watch_root.is_dir() else ():
        match = pattern.match(folder.name)
        if match and (folder / MANIFEST).is_file():
            found[int(match.group(1))] = folder
    return found


def publish_labels(repo: Repository, view: LabellingView, name: str | None = None
                   ) -> PublishReport:
    """Write the view's labels as a new catalog dataset and ingest it (section 3.1).

    The dataset is a folder per chip label under ``watch_root`` (chip pixels read from the
    image store at native bands and dtype), so the new-dataset sensor and every asset
    downstream of ``samples`` treat it like a dropped folder; it is ingested here too,
    through :meth:`Repository.ingest`, so its samples are in the catalog when this
    returns. Segment labels become one class-index mask per chip in the hidden
    ``.masks`` folder (``legend.json`` names the classes); the catalog does not ingest
    masks, so they travel beside the samples. ``.labelling.json`` records every chip of
    the view, labelled or not, with its source sample.

    Each publish whose labels differ from the latest one is a new dataset
    ``<name>-v<n>``: the sensor requests each new name once, and earlier versions stay
    as they were. Publishing unchanged labels writes nothing and re-runs the (idempotent)
    ingest of the latest version.

    Args:
        repo: the repository (its ``watch_root``, image store and catalog).
        view: the labelling view.
        name: the dataset name before ``-v<n>``; default ``<view>-labels``.

    Raises:
        ConfigError: ``watch_root`` is not set.
        LabellingError: no chip has a label yet, or a chip's mask does not match its pixels.
    """
    from PIL import Image

    from samplehub.export.files import file_suffix, safe_name, write_sample

    if not repo.config.watch_root:
        raise ConfigError(
            "publishing labels needs a watched folder for the new dataset: set watch_root "
            "in conf/config.yaml (or --set watch_root=PATH)"
        )
    watch_root = Path(repo.config.watch_root).expanduser().resolve()
    watch_root.mkdir(parents=True, exist_ok=True)
    base = check_name(name or f"{view.dataset}-labels")
    with file_lock(view.root / ".publish.lock"):
        state = view.current(view.labels.state())
        if not state.chips:
            raise LabellingError(
                f"labelling view {view.dataset!r}: no chip has a label yet; the published "
                "dataset's classes are chip labels, so label some chips before publishing"
                + (f" ({len(state.segments)} segments are labelled)" if state.segments else "")
            )
        print_ = fingerprint(state)
        versions = published_versions(watch_root, base)
        if versions:
            latest = max(versions)
            manifest = json.loads((versions[latest] / MANIFEST).read_text())
            if manifest["fingerprint"] == print_:
                target = versions[latest].name
                return PublishReport(
                    dataset=target, path=versions[latest], version=latest, unchanged=True,
                    chips_published=len(manifest["published"]),
                    chips_unlabelled=len(manifest["unlabelled"]),
                    masks=sum(1 for c in manifest["published"] if c["mask"]),
                    labels=tuple(manifest["labels"]),
                    segment_labels=tuple(manifest["legend"][1:]),
                    ingest=repo.ingest(repo.source_spec(target)),
                )
        registered = set(repo.catalog.datasets()["dataset"]) if repo.catalog.table(
            "datasets") is not None else set()
        taken = [int(m.group(1)) for d in registered
                 if (m := re.match(rf"^{re.escape(base)}-v(\d+)$", d))]
        version = max([0, *versions, *taken]) + 1
        target = f"{base}-v{version}"
        legend = [None, *sorted(set(state.segments.values()))]
        index = {label: i for i, label in enumerate(legend) if label}
        by_chip: dict[str, list[tuple[int, str]]] = {}
        for (chip, segment), seg_label in state.segments.items():
            by_chip.setdefault(chip, []).append((segment, seg_label))
        staging = Path(tempfile.mkdtemp(prefix=f".{target}.partial-", dir=watch_root))
        staging.chmod(0o755)  # mkdtemp makes it private; a dataset folder is not
        published: list[dict[str, Any]] = []
        try:
            (staging / MASK_DIR).mkdir()
            for chip in view.chips["sample_id"]:
                label = state.chips.get(chip)
                if label is None and chip not in by_chip:
                    continue
                row, pixels = repo.image(int(chip))
                entry: dict[str, Any] = {
                    "sample_id": chip, "source_dataset": row["dataset"],
                    "source_relpath": row["relpath"], "label": label, "file": None, "mask": None,
                }
                if label is not None:
                    stem = safe_name(Path(str(row["relpath"])).stem)
                    entry["file"] = f"{label}/{stem}-{chip}{file_suffix(pixels)}"
                    (staging / label).mkdir(exist_ok=True)
                    write_sample(staging / entry["file"], pixels, row)
                if chip in by_chip:
                    slic = view.mask(chip)
                    if slic.shape != pixels.shape[1:]:
                        raise LabellingError(
                            f"chip {chip}: its SLIC mask is {slic.shape} but its pixels are "
                            f"{pixels.shape[1:]}; rewrite the labelling view"
                        )
                    classes = np.zeros(slic.shape, np.uint8 if len(legend) < 256 else np.uint16)
                    for segment, name_ in by_chip[chip]:
                        classes[slic == segment] = index[name_]
                    entry["mask"] = f"{MASK_DIR}/{chip}.png"
                    Image.fromarray(classes).save(staging / entry["mask"])
                published.append(entry)
            (staging / MASK_DIR / "legend.json").write_text(json.dumps(legend))
            manifest = {
                "view": view.dataset, "dataset": target, "version": version,
                "fingerprint": print_, "published_at": datetime.now(UTC).isoformat(),
                "labels": sorted(set(state.chips.values())), "legend": legend,
                "published": published,
                "unlabelled": [c for c in view.chips["sample_id"] if c not in state.chips],
            }
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
            os.replace(staging, watch_root / target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        log.info("published %d labelled chips of view %s as %s", len(state.chips),
                 view.dataset, target)
        report = repo.ingest(repo.source_spec(target))
        return PublishReport(
            dataset=target, path=watch_root / target, version=version, unchanged=False,
            chips_published=sum(1 for c in published if c["file"]),
            chips_unlabelled=len(manifest["unlabelled"]),
            masks=sum(1 for c in published if c["mask"]),
            labels=tuple(manifest["labels"]), segment_labels=tuple(str(x) for x in legend[1:]),
            ingest=report,
        )
