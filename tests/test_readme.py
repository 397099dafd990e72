"""The README's Python example runs as written, in a fresh interpreter (scvi-tools' seed unset), on fewer cells."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(tmp_path):
    text = README.read_text()
    code = re.search(r"## In Python\s+```python\n(.*?)```", text, re.S).group(1)
    small = code.replace("n_cells=5000", "n_cells=300").replace("max_epochs=50", "max_epochs=2")
    assert small != code, "the README example no longer has the sizes this test shrinks"
    small += "\nassert z_rna.shape == (300, 50) and model.is_trained_\n"
    done = subprocess.run([sys.executable, "-c", small], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "model_dir" / "model.json").exists()
