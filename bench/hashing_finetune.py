"""DUWH and DMCH fine-tuned end to end (backbone included), packed here and trained on a GPU.

Claims: the same as ``bench/hashing.py`` (DMCH on UC Merced 60/40, mAP over the ranked
database at 32/64/96 bits, paper 0.9185 / 0.9266 / 0.9291; DUWH on EuroSAT, 100 queries per
class, mAP@1900 at 16/24/32/48 bits, paper 0.833 / 0.854 / 0.861 / 0.887), with the
EfficientNet-Lite0 backbone fine-tuned through each method's losses
(:mod:`ml.hashing.finetune`) instead of a head on cached features.

Three steps:

1. Here: ``.venv/bin/python bench/hashing_finetune.py --pack eurosat`` (and ``ucmerced``)
   writes ``bench/.cache/pack/<dataset>.npz`` (JPEG bytes, labels, the split indices of
   ``bench/hashing.py`` with its seeds, the papers' values) and the Lite0 weights in fp16,
   ``bench/.cache/pack/efficientnet_lite0_fp16.pth``.
2. On a GPU machine (torch, timm, numpy, scipy, pillow; no samplehub dependencies):
   ``python3 bench/hashing_finetune.py --data bench/.cache/pack/eurosat.npz --device cuda
   --budget-s 420 --out OUT``. Hyper-parameters (learning rates, backbone LR multiple,
   augmentation, number of epochs) are chosen on a validation split carved from the training
   side only: DMCH 20 % of the 60 % train part; DUWH 50 images per class of the database as
   validation queries (labels used only to score them), the rest of the database as training
   set and validation database. The evaluation queries are used once, at the end. Writes
   ``OUT/hashing_finetune_<dataset>.json`` and the fp16 models ``OUT/<dataset>_<bits>.pt``.
3. Here: ``.venv/bin/python bench/hashing.py --finetuned OUT/hashing_finetune_<dataset>.json``
   merges the rows into ``hashing.json`` and rebuilds ``hashing.md``.

``--quick`` runs step 2 on a tiny subset, one epoch, on any device (the CPU check).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ml.hashing import dmch, finetune, train  # noqa: E402
from ml.metrics import mean_average_precision  # noqa: E402

PACK = ROOT / "bench" / ".cache" / "pack"
WEIGHTS = "efficientnet_lite0_fp16.pth"
# dataset -> (stored side, JPEG quality); EuroSAT keeps its native 64 px.
PACKING = {"eurosat": (64, 80), "ucmerced": (224, 85)}
SELECT_FRACTION = 0.3  # share of the training budget spent choosing hyper-parameters
EVAL_RESERVE = 0.12  # share of each run's time slice kept for its final encoding

# Candidate settings tried on the validation split; the best (and its epoch count) trains
# every code length. DUWH: the paper's 2e-5 everywhere, and two head/backbone splits.
DUWH_GRID = [
    finetune.FinetuneConfig(resolution=128, lr=2e-5, backbone_lr_mult=1.0, epochs=800),
    finetune.FinetuneConfig(resolution=128, lr=1e-3, backbone_lr_mult=0.01, epochs=800),
    finetune.FinetuneConfig(resolution=128, lr=1e-3, backbone_lr_mult=0.1, epochs=800),
]
# DMCH: the paper's 1e-4 everywhere, a 10x lower backbone rate, with and without flips.
DMCH_GRID = [
    finetune.FinetuneConfig(resolution=224, lr=1e-4, backbone_lr_mult=1.0, epochs=800),
    finetune.FinetuneConfig(resolution=224, lr=1e-4, backbone_lr_mult=0.1, epochs=800),
    finetune.FinetuneConfig(
        resolution=224, lr=1e-4, backbone_lr_mult=0.1, augment=True, epochs=800
    ),
    finetune.FinetuneConfig(resolution=224, lr=1e-3, backbone_lr_mult=0.01, epochs=800),
]


# ----------------------------------------------------------------------------- pack (here)


def pack(dataset: str) -> Path:
    """Re-encode ``dataset`` as JPEG into one .npz with labels, splits and paper values."""
    from PIL import Image

    sys.path.insert(0, str(ROOT / "bench"))
    import hashing as bench_hashing  # bench/hashing.py: folders, splits, papers' values

    paths, y, classes = bench_hashing._image_paths(dataset)
    side, quality = PACKING[dataset]
    if dataset == "eurosat":
        database, query = bench_hashing.split_duwh(y)
        paper = bench_hashing.PAPER[("DUWH", "eurosat")]
    else:
        database, query = bench_hashing.split_dmch(y)
        paper = bench_hashing.PAPER[("DMCH", "ucmerced")]
    blobs = []
    for path in paths:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
            if rgb.size != (side, side):
                rgb = rgb.resize((side, side), Image.Resampling.BICUBIC)
            buf = io.BytesIO()
            rgb.save(buf, format="JPEG", quality=quality)
            blobs.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
    PACK.mkdir(parents=True, exist_ok=True)
    out = PACK / f"{dataset}.npz"
    meta = {
        "dataset": dataset,
        "side": side,
        "quality": quality,
        "paper": {str(bits): value for bits, value in paper.items()},
    }
    np.savez(
        out,
        jpeg=np.concatenate(blobs),
        offsets=np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64),
        labels=y.astype(np.int64),
        classes=np.array(classes),
        database=database.astype(np.int64),
        query=query.astype(np.int64),
        meta=np.array(json.dumps(meta)),
    )
    _pack_weights()
    return out


def _pack_weights() -> Path:
    """The packaged Lite0 ImageNet checkpoint, floating tensors in fp16, beside the packs."""
    from ml.features.backbone import lite0_checkpoint_path

    state = torch.load(lite0_checkpoint_path(), map_location="cpu", weights_only=True)
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    out = PACK / WEIGHTS
    torch.save(half, out)
    return out


# ------------------------------------------------------------------------- train (device)


def load_pack(path: Path) -> dict[str, Any]:
    """Decoded images (N, 3, H, W) uint8, labels, splits and metadata of a pack."""
    from PIL import Image

    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    jpeg, offsets = data.pop("jpeg"), data.pop("offsets")

    def decode(i: int) -> np.ndarray:
        with Image.open(io.BytesIO(jpeg[offsets[i] : offsets[i + 1]].tobytes())) as img:
            return np.asarray(img.convert("RGB")).transpose(2, 0, 1)

    with ThreadPoolExecutor(16) as pool:
        data["images"] = np.stack(list(pool.map(decode, range(len(offsets) - 1))))
    data["meta"] = json.loads(str(data["meta"]))
    return data


def _backbone_checkpoint(data_path: Path) -> Path | None:
    """None when the Lite0 package is installed, else the packed weights beside the data."""
    try:
        from ml.features.backbone import lite0_checkpoint_path

        lite0_checkpoint_path()
        return None
    except (ImportError, FileNotFoundError):
        path = data_path.parent / WEIGHTS
        if not path.is_file():
            raise FileNotFoundError(
                f"no EfficientNet-Lite0 weights: the package is missing and {path} does not "
                "exist; run --pack here and carry the pack folder"
            ) from None
        return path


def _stratified(y: np.ndarray, per_class: int | float, seed: int) -> np.ndarray:
    """Positions of ``per_class`` items (a count, or a fraction) of each class of ``y``."""
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        n = per_class if isinstance(per_class, int) else round(per_class * len(members))
        out.append(rng.choice(members, min(n, len(members) - 1), replace=False))
    return np.sort(np.concatenate(out))


class Budget:
    """Wall-clock budget split into slices for the runs still to come."""

    def __init__(self, seconds: float) -> None:
        self.start = time.perf_counter()
        self.end = self.start + seconds

    def left(self) -> float:
        """Seconds left."""
        return self.end - time.perf_counter()

    def deadline(self, share: float) -> float:
        """Training deadline of a run given ``share`` of what is left (minus its eval time)."""
        return time.perf_counter() + share * self.left() * (1 - EVAL_RESERVE)


def _best(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The trial and epoch with the highest validation mAP."""
    return max(trials, key=lambda t: t["val_map"])


def _select(
    grid: list[finetune.FinetuneConfig],
    run_one: Any,
    budget: Budget,
    quick: bool,
) -> tuple[finetune.FinetuneConfig, dict[str, Any]]:
    """Train every candidate for an equal time slice; pick (settings, epochs) by val mAP."""
    slice_share = SELECT_FRACTION
    trials = []
    for i, cfg in enumerate(grid):
        share = slice_share / (len(grid) - i) if not quick else 1.0 / (len(grid) - i + 4)
        result = run_one(cfg, budget.deadline(share))
        curve = [(int(r["epoch"]), r["map"]) for r in result.history if "map" in r]
        epoch, score = max(curve, key=lambda e: e[1])
        trials.append(
            {
                "settings": cfg.as_dict(),
                "val_map_by_epoch": curve,
                "best_epoch": epoch,
                "val_map": round(float(score), 4),
                "epochs_run": len(result.history),
            }
        )
        slice_share -= slice_share / (len(grid) - i)
        print("selection", trials[-1], flush=True)
    best = _best(trials)
    chosen = grid[[t["settings"] for t in trials].index(best["settings"])]
    # Still improving at its last epoch: train to the deadline; else stop at the best epoch.
    still_rising = best["best_epoch"] == best["epochs_run"]
    epochs = chosen.epochs if still_rising else best["best_epoch"]
    chosen = replace(chosen, epochs=epochs)
    rule = "deadline (val mAP still rising)" if still_rising else f"best val epoch {epochs}"
    return chosen, {"trials": trials, "chosen": chosen.as_dict(), "epochs_rule": rule}


def run_duwh(data: dict[str, Any], backbone: Any, args: argparse.Namespace) -> dict[str, Any]:
    """DUWH on a EuroSAT pack: select on database-only validation, train every length."""
    images, y, db, q = data["images"], data["labels"], data["database"], data["query"]
    bits_list: tuple[int, ...] = (16, 24, 32, 48)
    topk, k1, k2 = 1900, 20, 30
    grid, select_bits = DUWH_GRID, 32
    if args.quick:
        db, q, grid, bits_list, topk = _quick(db, q, y, grid, bits_list)
        k1, k2 = 5, 8
    budget, dev = Budget(args.budget_s), args.device
    val_pos = _stratified(y[db], 5 if args.quick else 50, seed=1)
    val_q, sel = db[val_pos], np.delete(db, val_pos)
    val_topk = max(1, round(topk * len(sel) / len(db)))
    res = grid[0].resolution
    M_sel = finetune.pretrained_similarity(backbone, images[sel], res, k1, k2, dev)
    ev_val = train.EvalSet(images[val_q], y[val_q], images[sel], y[sel], topk=val_topk)

    def trial(cfg: finetune.FinetuneConfig, deadline: float) -> train.TrainResult:
        return finetune.finetune_duwh(
            images[sel],
            select_bits,
            backbone,
            cfg,
            M0=M_sel,
            k1=k1,
            k2=k2,
            eval_set=ev_val,
            eval_every=1,
            device=dev,
            deadline=deadline,
        )

    chosen, selection = _select(grid, trial, budget, args.quick)
    selection.update(
        bits=select_bits, n_val_queries=len(val_q), n_train=len(sel), val_topk=val_topk
    )
    M0 = finetune.pretrained_similarity(backbone, images[db], res, k1, k2, dev)
    purity = float(np.mean(_pair_labels(M0, y[db])))
    ev = train.EvalSet(images[q], y[q], images[db], y[db], topk=topk)
    rows = []
    for i, bits in enumerate(bits_list):
        start = time.perf_counter()
        result = finetune.finetune_duwh(
            images[db],
            bits,
            backbone,
            chosen,
            M0=M0,
            k1=k1,
            k2=k2,
            eval_set=ev,
            device=dev,
            deadline=budget.deadline(1 / (len(bits_list) - i)),
        )
        rows.append(
            _row(
                "DUWH (fine-tuned)",
                "eurosat",
                bits,
                result,
                data,
                start,
                pairs_purity=round(purity, 4),
            )
        )
        _save(result, args.out, "eurosat", bits)
        yield_rows(args, data, rows, selection, budget)
    return {"rows": rows, "selection": selection}


def run_dmch(data: dict[str, Any], backbone: Any, args: argparse.Namespace) -> dict[str, Any]:
    """DMCH on a UC Merced pack: select on 20 % of the train part, train every length."""
    images, y, db, q = data["images"], data["labels"], data["database"], data["query"]
    bits_list: tuple[int, ...] = (32, 64, 96)
    grid, select_bits, eval_every = DMCH_GRID, 64, 5
    if args.quick:
        db, q, grid, bits_list, _ = _quick(db, q, y, grid, bits_list)
        eval_every = 1
    budget, dev = Budget(args.budget_s), args.device
    val_pos = _stratified(y[db], 0.2, seed=1)
    val_q, sel = db[val_pos], np.delete(db, val_pos)
    ev_val = train.EvalSet(images[val_q], y[val_q], images[sel], y[sel], topk=None)

    def trial(cfg: finetune.FinetuneConfig, deadline: float) -> train.TrainResult:
        return finetune.finetune_dmch(
            images[sel],
            y[sel],
            select_bits,
            backbone,
            cfg,
            eval_set=ev_val,
            eval_every=eval_every,
            device=dev,
            deadline=deadline,
        )

    chosen, selection = _select(grid, trial, budget, args.quick)
    selection.update(bits=select_bits, n_val_queries=len(val_q), n_train=len(sel))
    ev = train.EvalSet(images[q], y[q], images[db], y[db], topk=None)
    rows = []
    for i, bits in enumerate(bits_list):
        start = time.perf_counter()
        result = finetune.finetune_dmch(
            images[db],
            y[db],
            bits,
            backbone,
            chosen,
            eval_set=ev,
            device=dev,
            deadline=budget.deadline(1 / (len(bits_list) - i)),
        )
        rows.append(_row("DMCH (fine-tuned)", "ucmerced", bits, result, data, start))
        model = cast(finetune.BackboneHasher, result.model)
        codes_q, u_q = finetune.encode_images(model, images[q], chosen.resolution, dev)
        codes_b, u_b = finetune.encode_images(model, images[db], chosen.resolution, dev)
        D, I = dmch.coarse_to_fine_rank(codes_q, u_q, codes_b, u_b, top_m=len(db))
        rerank = mean_average_precision(D, np.take_along_axis(ev.rel, I, 1), None)
        rows.append(
            {
                **rows[-1],
                "method": "DMCH+ (Eq. 7 re-rank, fine-tuned)",
                "map": round(float(rerank), 4),
                "paper": None,
            }
        )
        _save(result, args.out, "ucmerced", bits)
        yield_rows(args, data, rows, selection, budget)
    return {"rows": rows, "selection": selection}


def _quick(
    db: np.ndarray,
    q: np.ndarray,
    y: np.ndarray,
    grid: list[finetune.FinetuneConfig],
    bits_list: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray, list[finetune.FinetuneConfig], tuple[int, ...], int]:
    """Tiny subset (16 database and 2 query images per class), 64 px, 1 epoch, 2 settings."""
    db = db[_stratified(y[db], 16, seed=2)]
    q = q[_stratified(y[q], 2, seed=2)]
    grid = [replace(c, resolution=64, epochs=1, batch_size=32) for c in grid[:2]]
    return db, q, grid, bits_list[:2], 20


def _pair_labels(M: Any, y: np.ndarray) -> np.ndarray:
    """Whether each off-diagonal pseudo-similar pair of M shares its class."""
    from scipy import sparse

    coo = sparse.triu(M, k=1).tocoo()
    return np.asarray(y[coo.row] == y[coo.col])


def _row(
    method: str,
    dataset: str,
    bits: int,
    result: train.TrainResult,
    data: dict[str, Any],
    start: float,
    **extra: Any,
) -> dict[str, Any]:
    """One result row for ``hashing.json``."""
    paper = data["meta"]["paper"].get(str(bits))
    return {
        "method": method,
        "dataset": dataset,
        "bits": bits,
        "map": round(float(result.final_map or 0.0), 4),
        "paper": paper,
        "backbone": "tf_efficientnet_lite0 (ImageNet, offline), fine-tuned end to end",
        "epochs": len(result.history),
        "settings": {k: v for k, v in result.params.items() if k != "device"},
        "final_loss": round(result.history[-1]["loss"], 4),
        "device": _device_name(result.params["device"]),
        "train_s": round(time.perf_counter() - start, 1),
        **extra,
    }


def _device_name(device: str) -> str:
    """Human name of the accelerator (or CPU) a run used."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(torch.device(device))} (CUDA, bf16 autocast)"
    return f"CPU {platform.processor() or platform.machine()}"


def _save(result: train.TrainResult, out: Path, dataset: str, bits: int) -> None:
    """The trained backbone and head in fp16."""
    state = {
        k: v.half() if v.is_floating_point() else v for k, v in result.model.state_dict().items()
    }
    torch.save({"state_dict": state, "params": result.params}, out / f"{dataset}_{bits}.pt")


def yield_rows(
    args: argparse.Namespace,
    data: dict[str, Any],
    rows: list[dict[str, Any]],
    selection: dict[str, Any],
    budget: Budget,
) -> None:
    """Write the results so far (a killed run keeps its finished code lengths)."""
    dataset = data["meta"]["dataset"]
    report = {
        "dataset": dataset,
        "device": _device_name(args.device),
        "torch": torch.__version__,
        "budget_s": args.budget_s,
        "seconds": round(time.perf_counter() - budget.start, 1),
        "quick": args.quick,
        "selection": selection,
        "rows": [
            {**r, "validation": selection["trials"], "selected": selection["chosen"]} for r in rows
        ],
    }
    path = args.out / f"hashing_finetune_{dataset}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}: {[(r['bits'], r['map']) for r in rows]}", flush=True)


def main() -> int:
    """Pack a dataset (here) or train and score one pack (on the device)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pack", choices=sorted(PACKING), help="write the pack of a dataset")
    parser.add_argument("--data", type=Path, help="a pack written by --pack")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--budget-s", type=float, default=420.0, help="wall-clock budget")
    parser.add_argument("--out", type=Path, default=Path("bench/.cache/finetune_out"))
    parser.add_argument("--quick", action="store_true", help="tiny subset, 1 epoch (CPU check)")
    args = parser.parse_args()
    if args.pack:
        print(f"wrote {pack(args.pack)}", flush=True)
        return 0
    if args.data is None:
        parser.error("give --pack DATASET (here) or --data PACK (to train)")
    start = time.perf_counter()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_pack(args.data)
    backbone = finetune.lite0_backbone(_backbone_checkpoint(args.data))
    print(
        f"{args.data.name}: {data['images'].shape} decoded and backbone built in "
        f"{time.perf_counter() - start:.1f} s on {_device_name(args.device)}",
        flush=True,
    )
    args.budget_s -= time.perf_counter() - start
    run = run_duwh if data["meta"]["dataset"] == "eurosat" else run_dmch
    run(data, backbone, args)
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
