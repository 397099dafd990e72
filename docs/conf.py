"""Sphinx configuration of the indiseek documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` from the repository root.
Nothing here needs a network connection: no intersphinx, and notebooks are rendered, never executed.
"""

from __future__ import annotations

import importlib
import re
import shutil
import sys
import tomllib
import warnings
from pathlib import Path

from sphinx.util import logging

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# Document the source tree even when the package is not installed (its dependencies must be).
sys.path.insert(0, str(ROOT / "src"))

logger = logging.getLogger(__name__)
# muon, imported with indiseek.tl, reads scanpy's deprecated __version__: noise in the build log, not our concern.
warnings.filterwarnings("ignore", message=".*__version__.*deprecated", category=FutureWarning, module=r"muon\.")

# -- Project -------------------------------------------------------------------------------------------------------

_pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
project = _pyproject["name"]
release = version = _pyproject["version"]
author = "indiseek developers"
copyright = "the indiseek developers"

# -- General -------------------------------------------------------------------------------------------------------

extensions = [
    "myst_nb",  # Markdown pages and notebooks (brings myst_parser with it)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]

# .rst first: autosummary writes its stubs with the first suffix, and they are reStructuredText.
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
default_role = "literal"  # single backticks in docstrings render as code
nitpicky = False

# -- MyST and notebooks --------------------------------------------------------------------------------------------

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # tutorials are shown with the outputs they were saved with

# -- API reference -------------------------------------------------------------------------------------------------

autosummary_generate = True  # stubs go to docs/generated/ (git-ignored)
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autoclass_content = "class"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_param = False  # keeps combined entries ("n_hidden, n_layers") together, as written
strip_signature_backslash = True  # napoleon then escapes trailing underscores: `lambda_` is not read as a link
# The package's "Returns" sections are prose ("Array of shape (n, d), ..."), not "name : type" entries:
# render them as written.
napoleon_custom_sections = ["Returns"]

# -- HTML ----------------------------------------------------------------------------------------------------------

try:
    import sphinx_book_theme  # noqa: F401

    html_theme = "sphinx_book_theme"
    html_theme_options = {"show_toc_level": 2, "home_page_in_toc": True}
except ImportError:  # pragma: no cover - optional theme
    html_theme = "alabaster"
html_title = f"indiseek {version}"
html_static_path: list[str] = []

# -- Tutorials: copies of ../tutorials --------------------------------------------------------------------------------

TUTORIALS_SRC = ROOT / "tutorials"
TUTORIALS_DST = DOCS / "tutorials"  # git-ignored; rewritten by every build
_TUTORIAL_SUFFIXES = {".ipynb", ".png", ".jpg", ".jpeg", ".svg", ".gif"}
_TOC_MARKER = "<!-- tutorials-toctree -->"


def _sync_tutorials() -> list[str]:
    """Mirror the notebooks (and their pictures) of ../tutorials into docs/tutorials; return the notebook names.

    Files are copied with their modification times, so an unchanged notebook is not rebuilt; copies whose
    source is gone are removed.
    """
    wanted = {}
    if TUTORIALS_SRC.is_dir():
        for src in sorted(TUTORIALS_SRC.rglob("*")):
            rel = src.relative_to(TUTORIALS_SRC)
            if src.is_file() and src.suffix.lower() in _TUTORIAL_SUFFIXES and ".ipynb_checkpoints" not in rel.parts:
                wanted[rel] = src
    if TUTORIALS_DST.exists():
        for dst in sorted(TUTORIALS_DST.rglob("*"), reverse=True):
            rel = dst.relative_to(TUTORIALS_DST)
            if dst.is_file() and rel not in wanted:
                dst.unlink()
            elif dst.is_dir() and not any(dst.iterdir()):
                dst.rmdir()
    for rel, src in wanted.items():
        dst = TUTORIALS_DST / rel
        if not dst.exists() or dst.stat().st_mtime != src.stat().st_mtime or dst.stat().st_size != src.stat().st_size:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return [rel.with_suffix("").as_posix() for rel in wanted if rel.suffix == ".ipynb"]


TUTORIALS = _sync_tutorials()


def _tutorials_toctree(app, docname: str, source: list[str]) -> None:
    """Replace the marker on the tutorials page with a toctree of the notebooks, or say there are none yet."""
    if docname != "tutorials" or _TOC_MARKER not in source[0]:
        return
    if TUTORIALS:
        entries = "\n".join(f"tutorials/{name}" for name in TUTORIALS)
        block = f"```{{toctree}}\n:maxdepth: 1\n\n{entries}\n```"
    else:
        block = "No tutorial notebooks have been added yet; this page will list the notebooks of `tutorials/`."
    source[0] = source[0].replace(_TOC_MARKER, block)


# -- Check that the API page lists exactly what the package exports --------------------------------------------------

PUBLIC_MODULES = ["indiseek", "indiseek.model", "indiseek.module", "indiseek.nn", "indiseek.train", "indiseek.pp",
                  "indiseek.tl", "indiseek.pl", "indiseek.datasets", "indiseek.sim", "indiseek.defaults"]  # fmt: skip


def _check_api_page(app) -> None:
    """Warn (an error under ``-W``) when api.md misses a name of a public ``__all__``, or lists one that is not."""
    text = (DOCS / "api.md").read_text()
    listed = {}
    for block in re.findall(r"\.\. autosummary::\n((?:[ \t]+.*\n|\n)+)", text):
        for line in block.splitlines():
            name = line.strip().lstrip("~")
            if name and not name.startswith(":"):
                listed[name] = None
    documented = {}
    for name in listed:
        module, _, attr = f"indiseek.{name}".rpartition(".")
        try:
            documented[f"indiseek.{name}"] = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            logger.warning("api.md lists indiseek.%s, which cannot be imported.", name)
    exported = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            if isinstance(obj, type(module)):  # a subpackage, checked through its own __all__
                continue
            exported.append(obj)
            if not any(obj is d for d in documented.values()):
                logger.warning("api.md does not list %s.%s (exported by its __all__).", module_name, attr)
    for name, obj in documented.items():
        if not any(obj is e for e in exported):
            logger.warning("api.md lists %s, which no public __all__ exports.", name)


# -- Documentation of re-exported constants ------------------------------------------------------------------------


def _doc_comment(name: str) -> list[str] | None:
    """The ``#:`` comment of a constant re-exported by a package, found in the private module that defines it.

    Autodoc looks for ``#:`` comments only in the module it documents (e.g. ``indiseek/sim/__init__.py``), while
    the constants are defined, and commented, in private modules (e.g. ``indiseek/sim/_settings.py``).
    """
    import pkgutil

    from sphinx.pycode import ModuleAnalyzer

    package, _, attr = name.rpartition(".")
    module = importlib.import_module(package)
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        try:
            docs = ModuleAnalyzer.for_module(f"{package}.{info.name}").find_attr_docs()
        except Exception:  # noqa: BLE001 - a module without source simply has no comments
            continue
        if ("", attr) in docs:
            return list(docs[("", attr)])
    return None


def _data_docstring(app, what, name, obj, options, lines: list[str]) -> None:
    """Give a re-exported constant its ``#:`` comment instead of its type's docstring (e.g. ``dict``'s)."""
    if what != "data" or not name.startswith("indiseek."):
        return
    comment = _doc_comment(name)
    if comment is not None:
        lines[:] = comment
    elif "\n".join(lines).strip() == (type(obj).__doc__ or "").strip() or type(obj).__module__ in ("builtins", "numpy"):
        lines[:] = []


def setup(app) -> None:
    """Connect the hooks above."""
    app.connect("autodoc-process-docstring", _data_docstring)
    app.connect("source-read", _tutorials_toctree)
    # The toctree depends on the notebooks present, not only on tutorials.md: always re-read that page.
    app.connect("env-get-outdated", lambda app, env, added, changed, removed: ["tutorials"])
    app.connect("builder-inited", _check_api_page)
