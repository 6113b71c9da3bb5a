"""``make bench``: run every benchmark script in turn (each writes bench/results/*.json)."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "ingest.py",
    "store_layout.py",
    "label_merge.py",
    "features.py",
    "integration.py",
    "query.py",
    "supplementary.py",
    "assembled.py",  # after supplementary.py: a classifier trained on what the query assembles
    "hash_catalog.py",  # on assembled.py's home: DMCH on one dataset vs the whole catalog
    "hamming_vs_ivfpq.py",  # before hashing.py, whose report includes hamming.json
    "hashing.py",
    "hir.py",  # after hashing.py, whose feature cache gives its EfficientNet-Lite0 rows
    "labelling.py",
    "automation.py",
    "spatial.py",
    "scale_out.py",  # about an hour on 2 cores: both executors at 2,700 and 27,000 samples
    "scale_plan.py",  # after scale_out.py, whose measured points it draws
]

failed = []
for script in SCRIPTS:
    if not (HERE / script).exists():
        continue
    print(f"== bench/{script}", flush=True)
    if subprocess.run([sys.executable, str(HERE / script)], cwd=HERE).returncode != 0:
        failed.append(script)
if failed:
    sys.exit(f"benchmarks failed: {', '.join(failed)}")
