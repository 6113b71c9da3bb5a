"""The import direction ml <- samplehub <- assets <- jobs <- orchestration is enforced."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_domain_package_imports_without_dagster() -> None:
    code = (
        "import sys, pkgutil, importlib, samplehub\n"
        "for m in pkgutil.walk_packages(samplehub.__path__, 'samplehub.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('dagster' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_import_linter_layers_contract_holds() -> None:
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(linter)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Layers flow" in result.stdout
