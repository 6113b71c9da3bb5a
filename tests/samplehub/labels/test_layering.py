"""samplehub.labels is importable without Dagster or the heavy model stack."""

import subprocess
import sys


def test_importing_labels_pulls_in_neither_dagster_nor_torch() -> None:
    code = (
        "import sys, samplehub.labels, samplehub.labels.workflow, samplehub.cli.labels; "
        "heavy = ('dagster', 'torch', 'sentence_transformers'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
