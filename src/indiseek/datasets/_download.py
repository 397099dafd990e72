"""Downloaders of public CITE-seq data: each file is fetched once into a cache, checked, and read into a MuData."""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import BinaryIO

from mudata import MuData
from tqdm.auto import tqdm

from indiseek._docs import dsp

from ._io import read_10x

logger = logging.getLogger(__name__)

#: Environment variable naming the folder of downloaded data (default ``~/.cache/indiseek``).
DATA_DIR_ENV = "INDISEEK_DATA_DIR"
_DEFAULT_DATA_DIR = "~/.cache/indiseek"
_CHUNK = 1 << 20
_TIMEOUT_S = 60


def _load_registry() -> dict[str, dict]:
    text = resources.files(__package__).joinpath("registry.json").read_text(encoding="utf-8")
    return json.loads(text)


#: The files the downloaders fetch, by dataset name: ``url``, ``file``, ``size`` (bytes), ``sha256``, ``md5``,
#: ``licence``, ``citation``. Read from ``registry.json`` beside this module, the one copy of these facts;
#: a digest or size that no public source gives is ``None``.
REGISTRY: dict[str, dict] = _load_registry()

# Datasets whose missing SHA-256 was already reported in this process: the warning is given once.
_UNRECORDED_REPORTED: set[str] = set()


def _cache_dir(cache_dir: str | Path | None) -> Path:
    """``cache_dir``, else ``$INDISEEK_DATA_DIR``, else ``~/.cache/indiseek``."""
    if cache_dir is None:
        cache_dir = os.environ.get(DATA_DIR_ENV) or _DEFAULT_DATA_DIR
    return Path(cache_dir).expanduser()


def _user_agent() -> str:
    try:
        return f"indiseek/{version('indiseek')}"
    except PackageNotFoundError:
        return "indiseek"


class _Digests:
    """Size, SHA-256 and MD5 of a stream of bytes, updated chunk by chunk."""

    def __init__(self) -> None:
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._sha256.update(chunk)
        self._md5.update(chunk)

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()

    @classmethod
    def of_file(cls, path: Path) -> _Digests:
        digests = cls()
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digests.update(chunk)
        return digests

    def mismatches(self, size: int | None, sha256: str | None, md5: str | None) -> list[str]:
        """The recorded properties these bytes lack, as ``"what: expected ..., got ..."``."""
        found = []
        if size is not None and self.size != size:
            found.append(f"size: expected {size} bytes, got {self.size}")
        if sha256 is not None and self.sha256 != sha256.lower():
            found.append(f"SHA-256: expected {sha256.lower()}, got {self.sha256}")
        if md5 is not None and self.md5 != md5.lower():
            found.append(f"MD5: expected {md5.lower()}, got {self.md5}")
        return found


def _report_unrecorded(name: str, path: Path, digests: _Digests, size: int | None, md5: str | None) -> None:
    """Warn once per dataset that its SHA-256 is not recorded, giving the one computed so it can be."""
    if name in _UNRECORDED_REPORTED:
        return
    _UNRECORDED_REPORTED.add(name)
    checked = [what for what, value in (("size", size), ("MD5", md5)) if value is not None]
    checks = f"checked against the recorded {' and '.join(checked)} only" if checked else "not checked"
    warnings.warn(
        f"The SHA-256 of {path.name} ({name}) is not recorded in indiseek's registry, so the file was {checks}. "
        f"It has SHA-256 {digests.sha256} and {digests.size} bytes: record them in "
        "src/indiseek/datasets/registry.json.",
        UserWarning,
        stacklevel=5,
    )


def _download(url: str, out: BinaryIO, name: str, path: Path, progress_bar: bool) -> _Digests:
    """Stream ``url`` into ``out``; connection and HTTP failures become a :class:`ConnectionError`."""
    digests = _Digests()
    request = urllib.request.Request(url, headers={"User-Agent": _user_agent()})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, disable=not progress_bar
            ) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digests.update(chunk)
                    bar.update(len(chunk))
        if total is not None and digests.size != total:
            raise http.client.IncompleteRead(b"", total - digests.size)
    except urllib.error.HTTPError as err:
        raise _unreachable(name, url, path, f"HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as err:
        reason = str(getattr(err, "reason", None) or err) or type(err).__name__
        raise _unreachable(name, url, path, reason) from err
    return digests


def _unreachable(name: str, url: str, path: Path, reason: str) -> ConnectionError:
    return ConnectionError(
        f"Could not download {name} from {url} ({reason}). If this machine cannot reach that host, download the "
        f"file another way and place it at {path} (the cache folder is set by cache_dir= or ${DATA_DIR_ENV}); "
        "it is then checked and used without downloading."
    )


def _fetch(
    name: str,
    url: str,
    sha256: str | None,
    size: int | None,
    path: str | Path,
    progress_bar: bool = True,
    md5: str | None = None,
) -> Path:
    """Download ``url`` to ``path`` unless a file matching the recorded digests is already there.

    The download goes to a temporary file beside ``path`` and replaces ``path`` (atomically, with
    :func:`os.replace`) only once its size and digests match those recorded; a cached file that does not
    match is downloaded again, with a warning. A digest or size of `None` is not checked; when ``sha256`` is
    `None` a warning (once per ``name`` and process) gives the SHA-256 computed, so that it can be recorded.

    Parameters
    ----------
    name
        Dataset name, for messages and the progress bar.
    url
        Where to download the file from.
    sha256, size, md5
        Recorded SHA-256 (hex), size in bytes and MD5 (hex) of the file, or `None` where unknown.
    path
        Where the file is kept.
    progress_bar
        Show a progress bar while downloading.

    Returns
    -------
    ``path``, holding the checked file.

    Raises
    ------
    ConnectionError
        If the host cannot be reached or answers with an HTTP error; the message names the URL and ``path``.
    ValueError
        If the downloaded file does not match the recorded size or digests; nothing is left behind.
    """
    path = Path(path)
    if path.is_file():
        digests = _Digests.of_file(path)
        mismatches = digests.mismatches(size, sha256, md5)
        if not mismatches:
            logger.info("Using the cached %s.", path)
            if sha256 is None:
                _report_unrecorded(name, path, digests, size, md5)
            return path
        warnings.warn(
            f"The cached {path} does not match indiseek's registry ({'; '.join(mismatches)}): downloading it again.",
            UserWarning,
            stacklevel=4,
        )

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            logger.info("Downloading %s from %s to %s.", name, url, path)
            digests = _download(url, out, name, path, progress_bar)
        mismatches = digests.mismatches(size, sha256, md5)
        if mismatches:
            raise ValueError(
                f"The file {path.name} downloaded from {url} does not match indiseek's registry "
                f"({'; '.join(mismatches)}); it was discarded. If the host now serves a new version of the file, "
                "check that version and record its size and digests in src/indiseek/datasets/registry.json."
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a shared cache folder needs it readable by others
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if sha256 is None:
        _report_unrecorded(name, path, digests, size, md5)
    return path


def _fetch_dataset(name: str, cache_dir: str | Path | None, progress_bar: bool) -> Path:
    """The checked local copy of registry entry ``name``, downloaded into the cache folder if needed."""
    entry = REGISTRY[name]
    return _fetch(
        name,
        entry["url"],
        entry.get("sha256"),
        entry.get("size"),
        _cache_dir(cache_dir) / entry["file"],
        progress_bar=progress_bar,
        md5=entry.get("md5"),
    )


@dsp.dedent
def pbmc10k_cite(cache_dir: str | Path | None = None, progress_bar: bool = True) -> MuData:
    """10k PBMCs of a healthy donor with TotalSeq-B antibodies (10x Genomics, Cell Ranger 3.0.0).

    The filtered feature-barcode matrix (``pbmc_10k_protein_v3``: 7,865 cells, 17 antibodies, a ``.tar.gz`` of
    the Matrix Market files) is downloaded on the first call, checked against the registry
    (``indiseek.datasets.REGISTRY``: its MD5 is recorded) and read with :func:`~indiseek.datasets.read_10x`.
    Later calls read the cached file. Licence: CC BY 4.0; cite 10x Genomics (2018).

    %(sections_download)s
    """
    return read_10x(_fetch_dataset("pbmc10k_cite", cache_dir, progress_bar))


@dsp.dedent
def pbmc5k_cite(cache_dir: str | Path | None = None, progress_bar: bool = True) -> MuData:
    """5k PBMCs of a healthy donor with TotalSeq-B antibodies (10x Genomics, Cell Ranger 3.0.2).

    The filtered feature-barcode matrix (``5k_pbmc_protein_v3``: 5,247 cells, ``.h5``) is downloaded on the first
    call, checked against the registry (``indiseek.datasets.REGISTRY``: its size and MD5 are recorded) and read
    with :func:`~indiseek.datasets.read_10x`. Later calls read the cached file. Licence: CC BY 4.0; cite
    10x Genomics (2019).

    %(sections_download)s
    """
    return read_10x(_fetch_dataset("pbmc5k_cite", cache_dir, progress_bar))
