"""Folder-per-class datasets: UC Merced, EuroSAT, AID, NWPU-RESISC45 and alike.

Main paper, section 3.2: a breadth-first traversal of the directory tree yields the label
category system; then a parallel depth-first traversal per label collects the samples.
A class folder that holds sub-folders is a parent label, so nested trees (Million-AID
style ``water_area/beach``) become a label hierarchy. Images directly under the root
are unlabelled.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import fsspec

from samplehub.errors import SourceNotFoundError
from samplehub.records import FileEntry
from samplehub.sources.base import Source
from samplehub.sources.filesystem import relative
from samplehub.sources.label_tree import LabelTree
from samplehub.sources.readers import IMAGE_SUFFIXES


def list_dir(fs: fsspec.AbstractFileSystem, path: str) -> tuple[list[str], list[str]]:
    """(sub-folders, image files) directly under ``path``, sorted, hidden names skipped."""
    folders, files = [], []
    for info in fs.ls(path, detail=True):
        name = info["name"].rstrip("/")
        if name.rsplit("/", 1)[-1].startswith("."):
            continue
        if info["type"] == "directory":
            folders.append(name)
        elif name.lower().endswith(IMAGE_SUFFIXES):
            files.append(name)
    return sorted(folders), sorted(files)


def label_folders(fs: fsspec.AbstractFileSystem, root: str) -> list[tuple[str, tuple[str, ...]]]:
    """Breadth-first walk: every folder under ``root`` with its root-first label path."""
    found: list[tuple[str, tuple[str, ...]]] = []
    queue: deque[tuple[str, tuple[str, ...]]] = deque([(root, ())])
    while queue:
        path, labels = queue.popleft()
        folders, _ = list_dir(fs, path)
        for folder in folders:
            child = (*labels, folder.rsplit("/", 1)[-1])
            found.append((folder, child))
            queue.append((folder, child))
    return found


class FolderTreeSource(Source):
    """One folder per class, possibly nested; the deepest folder names the sample's label."""

    kind = "folder_tree"

    @classmethod
    def detect(cls, fs: fsspec.AbstractFileSystem, root: str) -> bool:
        """A folder whose sub-folders hold images."""
        folders, _ = list_dir(fs, root)
        return any(any(list_dir(fs, f)) for f in folders[:3])

    def _folders(self) -> list[tuple[str, tuple[str, ...]]]:
        folders = label_folders(self.fs, self.root)
        if not folders:
            raise SourceNotFoundError(
                f"{self.spec.uri}: no class folders found; a folder-per-class dataset needs "
                "one sub-folder per label holding its images"
            )
        return folders

    def label_tree(self) -> LabelTree:
        """Every class folder, nested folders as children of their parent folder."""
        tree = LabelTree()
        for _, path in self._folders():
            tree.add_path(path)
        return tree

    def discover(self, batch_size: int = 2048) -> Iterator[list[FileEntry]]:
        """Parallel depth-first listing of each class folder's images, in batches."""
        folders = self._folders()
        threads = int(self.spec.options.get("discovery_threads", 8))
        batch: list[FileEntry] = []
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for (_, path), (_, files) in zip(
                folders, pool.map(lambda f: list_dir(self.fs, f[0]), folders), strict=True
            ):
                for file in files:
                    batch.append(
                        FileEntry(
                            dataset=self.spec.name,
                            relpath=relative(file, self.root),
                            uri=self.uri_of(file),
                            labels=(path[-1],),
                            label_path=path,
                        )
                    )
                    if len(batch) >= batch_size:
                        yield batch
                        batch = []
        if batch:
            yield batch

    def empty_label_folders(self) -> list[str]:
        """Leaf class folders that hold no image (reported, not fatal)."""
        return [
            self.uri_of(folder)
            for folder, _ in self._folders()
            if list_dir(self.fs, folder) == ([], [])
        ]
