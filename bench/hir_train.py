"""Train HIR's TKANet and ESFormer for ``bench/hir.py`` on another machine (a lent GPU).

The protocol is ``bench/hir.py``'s (its seeded split, merged residential labels, best epoch
on the archive-validation images, never the queries); only the device, the input side and
the epochs differ, and ESFormer's ImageNet encoder is fine-tuned with the rest, as the paper
trains it (on a CPU it stays frozen). The weights land where ``bench/hir.py --side S``
reads them, ``bench/.cache/hir_<net>_<S>px.pt``, each recording the device it trained on.

Steps:

1. Here: ``.venv/bin/python bench/hir_train.py --pack`` writes
   ``bench/.cache/pack/hir_labels.npz`` (UC Merced's 17-class image labels in the order of
   ``bench/.cache/pack/ucmerced.npz``, the 224-px JPEG pack of ``bench/hashing_finetune.py
   --pack ucmerced``, checked against ``bench/hir.py``'s file order).
2. There: ``python3 bench/hir_train.py --data bench/.cache/pack/ucmerced.npz --device cuda
   --out $OUT`` (carry the two packs and ``efficientnet_lite0_fp16.pth``).
3. Here: copy ``hir_tkanet_224px.pt`` and ``hir_esformer_224px.pt`` into ``bench/.cache`` and
   run ``bench/hir.py --side 224``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from hashing_finetune import PACK, _backbone_checkpoint, load_pack  # noqa: E402
from hir import fit_esformer, fit_tkanet, merged, saved_model, split  # noqa: E402

from ml.hir.train import ESFormerTrainConfig, TKANetTrainConfig  # noqa: E402

LABELS = "hir_labels.npz"


def pack_labels() -> Path:
    """Write the multi-label matrix aligned with ``ucmerced.npz`` (checked against hir.py)."""
    from common import require_data
    from hir import load_ucmerced

    data = load_ucmerced(require_data("ucmerced", "ucmerced_multilabel"))
    with np.load(PACK / "ucmerced.npz") as z:
        if not np.array_equal(z["labels"], data["y"]):
            raise ValueError(f"{PACK / 'ucmerced.npz'}: labels are not in bench/hir.py's order")
    out = PACK / LABELS
    np.savez(out, Y=data["Y"], landcover=np.array(data["landcover"]),
             classes=np.array(data["classes"]))
    return out


def main() -> int:
    """Pack the labels here, or train both networks on ``--device`` and save them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", action="store_true", help="write hir_labels.npz and stop")
    parser.add_argument("--data", type=Path, default=PACK / "ucmerced.npz")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tk-epochs", type=int, default=120)
    parser.add_argument("--es-epochs", type=int, default=40)
    parser.add_argument("--window", type=int, default=7,
                        help="ESFormer attention window; divides the 1/8 token grid (28 at 224)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / ".cache")
    parser.add_argument("--quick", action="store_true", help="1 epoch each on 64 images")
    args = parser.parse_args()
    if args.pack:
        print(pack_labels())
        return 0
    torch.backends.cudnn.benchmark = True
    data = load_pack(args.data)
    with np.load(args.data.parent / LABELS) as z:
        Y, classes = z["Y"], [str(c) for c in z["classes"]]
    images, y = data["images"], data["labels"]
    side = images.shape[-1]
    _, v, t = split(y)  # the queries stay unseen
    if args.quick:
        t, v = t[::20], v[::20]
    ym = merged(y, classes)
    checkpoint = _backbone_checkpoint(args.data)
    device = (torch.cuda.get_device_name() if args.device.startswith("cuda")
              else f"cpu ({torch.get_num_threads()} threads)")
    args.out.mkdir(parents=True, exist_ok=True)
    epochs = (1, 1) if args.quick else (args.tk_epochs, args.es_epochs)
    jobs = (
        ("tkanet", lambda: fit_tkanet(images, ym, t, v, TKANetTrainConfig(
            epochs=epochs[0], batch_size=64, device=args.device))),
        ("esformer", lambda: fit_esformer(images, Y, t, v, ESFormerTrainConfig(
            epochs=epochs[1], batch_size=32, window=args.window, freeze_encoder=False,
            device=args.device,
            checkpoint=None if checkpoint is None else str(checkpoint)))),
    )
    for name, fit in jobs:
        start = time.perf_counter()
        result = fit()
        saved = saved_model(result, time.perf_counter() - start, device)
        path = args.out / f"hir_{name}_{side}px.pt"
        torch.save(saved, path)
        best = max(row.get("map", 0.0) for row in result.history)
        print(f"{name}: {saved['seconds']} s on {device}, best validation map {best:.4f} -> "
              f"{path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
