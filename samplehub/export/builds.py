"""Stored logical datasets: ``<home>/builds/<build_id>/{build.json, members.parquet}``.

A build is written to a temporary sibling folder and renamed into place, so a reader
never sees half a build; the same build id always holds the same members, so saving it
again is a no-op.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, fields
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa

from samplehub.errors import BuildNotFoundError
from samplehub.export.builder import LogicalDataset, Member
from samplehub.export.spec import DatasetSpec

MEMBERS = pa.schema(
    [
        ("sample_id", pa.int64()),
        ("dataset", pa.string()),
        ("relpath", pa.string()),
        ("label", pa.string()),
        ("labels", pa.list_(pa.string())),
        ("kind", pa.string()),
        ("score", pa.float64()),
        ("reason", pa.string()),
        ("path", pa.list_(pa.string())),
        ("split", pa.string()),
    ]
)


class BuildStore:
    """Logical datasets saved under one folder (``<home>/builds`` by default)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def save(self, logical: LogicalDataset) -> Path:
        """Store ``logical`` atomically; returns its folder."""
        target = self.root / logical.build_id
        if target.is_dir():
            return target
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{logical.build_id}-", dir=self.root))
        try:
            meta = {
                "build_id": logical.build_id,
                "spec_id": logical.spec_id,
                "spec": logical.spec.model_dump(mode="json"),
                "plan": logical.plan,
                "created_at": logical.created_at.isoformat(),
            }
            (staging / "build.json").write_text(json.dumps(meta, indent=2, default=str))
            rows = [asdict(m) for m in logical.members]
            pa.Table.from_pylist(rows, schema=MEMBERS).to_pandas().to_parquet(
                staging / "members.parquet", index=False
            )
            os.replace(staging, target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not target.is_dir():
                raise
        return target

    def load(self, build_id: str) -> LogicalDataset:
        """A stored build.

        Raises:
            BuildNotFoundError: no build with that id.
        """
        folder = self.root / build_id
        if "/" in build_id or build_id.startswith(".") or not (folder / "build.json").is_file():
            raise BuildNotFoundError(
                f"no logical dataset {build_id!r} under {self.root}; build one with "
                "`samplehub build SPEC` or POST /build"
            )
        meta = json.loads((folder / "build.json").read_text())
        frame = pd.read_parquet(folder / "members.parquet")
        names = [f.name for f in fields(Member)]
        members = [
            Member(
                **{
                    **row,
                    "sample_id": int(row["sample_id"]),
                    "score": float(row["score"]),
                    "labels": list(row["labels"]),
                    "path": list(row["path"]),
                }
            )
            for row in frame[names].to_dict("records")
        ]
        return LogicalDataset(
            build_id=meta["build_id"],
            spec=DatasetSpec.model_validate(meta["spec"]),
            spec_id=meta["spec_id"],
            members=members,
            plan=meta["plan"],
            created_at=datetime.fromisoformat(meta["created_at"]),
        )

    def ids(self) -> list[str]:
        """Stored build ids, oldest first."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if (p / "build.json").is_file()]
        return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime)]
