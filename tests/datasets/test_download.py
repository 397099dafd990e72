import gzip
import hashlib
import http.server
import io
import re
import socket
import tarfile
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse
from scipy.io import mmwrite

from indiseek.datasets import REGISTRY, _download, pbmc5k_cite, pbmc10k_cite

README = Path(__file__).resolve().parents[2] / "data" / "README.md"
N_CELLS, N_GENES, N_PROTEINS = 9, 5, 3


def _gz(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


def _tiny_10x_tarball() -> bytes:
    """A Cell Ranger v3 ``filtered_feature_bc_matrix/`` folder as 10x ships it, in a .tar.gz, as bytes."""
    rng = np.random.default_rng(0)
    x = sparse.random(N_CELLS, N_GENES + N_PROTEINS, density=0.6, format="csr", random_state=rng)
    x.data = rng.integers(1, 20, x.nnz).astype(float)
    features = [f"ENSG{i}\tGENE{i}\tGene Expression" for i in range(N_GENES)]
    features += [f"AB{i}\tCD{i}_TotalSeqB\tAntibody Capture" for i in range(N_PROTEINS)]
    matrix = io.BytesIO()
    mmwrite(matrix, sparse.csc_matrix(x.T.astype(np.int64)), field="integer")
    files = {
        "matrix.mtx.gz": gzip.compress(matrix.getvalue(), mtime=0),
        "features.tsv.gz": _gz("\n".join(features) + "\n"),
        "barcodes.tsv.gz": _gz("\n".join(f"CELL{i}-1" for i in range(N_CELLS)) + "\n"),
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"filtered_feature_bc_matrix/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


TARBALL = _tiny_10x_tarball()
TARBALL_SHA256 = hashlib.sha256(TARBALL).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the name http.server calls
        self.server.requests.append(self.path)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests = {"/pbmc.tar.gz": TARBALL}, []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    monkeypatch.setattr(_download, "_UNRECORDED_REPORTED", set())


def _point_to(monkeypatch, url, name="pbmc10k_cite", **recorded):
    entry = {**REGISTRY[name], "url": url, "file": "pbmc.tar.gz", "size": None, "sha256": None, "md5": None}
    monkeypatch.setitem(REGISTRY, name, {**entry, **recorded})


def test_download_then_cached(server, monkeypatch, tmp_path, capsys):
    _point_to(monkeypatch, f"{server.url}/pbmc.tar.gz", sha256=TARBALL_SHA256, size=len(TARBALL))
    cache = tmp_path / "cache"
    mdata = pbmc10k_cite(cache_dir=cache, progress_bar=False)
    assert mdata["rna"].shape == (N_CELLS, N_GENES) and mdata["prot"].shape == (N_CELLS, N_PROTEINS)
    assert list(mdata["prot"].var_names) == [f"CD{i}_TotalSeqB" for i in range(N_PROTEINS)]
    assert [p.name for p in cache.iterdir()] == ["pbmc.tar.gz"]  # no temporary file left
    assert capsys.readouterr().err == ""  # progress bar off

    again = pbmc10k_cite(cache_dir=cache, progress_bar=False)
    assert server.requests == ["/pbmc.tar.gz"]  # the second call made no request
    np.testing.assert_array_equal(again["prot"].X, mdata["prot"].X)


def test_progress_bar_and_default_cache_folder(server, monkeypatch, tmp_path, capsys):
    _point_to(monkeypatch, f"{server.url}/pbmc.tar.gz", name="pbmc5k_cite", sha256=TARBALL_SHA256)
    monkeypatch.setenv(_download.DATA_DIR_ENV, str(tmp_path / "env"))
    pbmc5k_cite()
    assert (tmp_path / "env" / "pbmc.tar.gz").read_bytes() == TARBALL
    assert "pbmc5k_cite" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("recorded", "what"),
    [
        ({"sha256": "0" * 64}, "SHA-256"),
        ({"md5": "f" * 32}, "MD5"),
        ({"sha256": TARBALL_SHA256, "size": len(TARBALL) + 1}, "size"),
    ],
)
def test_mismatching_download_is_refused_and_discarded(server, monkeypatch, tmp_path, recorded, what):
    _point_to(monkeypatch, f"{server.url}/pbmc.tar.gz", **recorded)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=f"pbmc.tar.gz .*{what}: expected") as err:
        pbmc10k_cite(cache_dir=cache, progress_bar=False)
    if what == "SHA-256":
        assert "0" * 64 in str(err.value) and TARBALL_SHA256 in str(err.value)
    assert list(cache.iterdir()) == []


def test_corrupted_cache_is_downloaded_again(server, monkeypatch, tmp_path):
    _point_to(monkeypatch, f"{server.url}/pbmc.tar.gz", sha256=TARBALL_SHA256)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "pbmc.tar.gz").write_bytes(TARBALL[:-10])
    with pytest.warns(UserWarning, match="does not match.*downloading it again"):
        mdata = pbmc10k_cite(cache_dir=cache, progress_bar=False)
    assert mdata.n_obs == N_CELLS
    assert server.requests == ["/pbmc.tar.gz"]
    assert (cache / "pbmc.tar.gz").read_bytes() == TARBALL


def test_unrecorded_checksum_is_reported_once(server, monkeypatch, tmp_path):
    _point_to(monkeypatch, f"{server.url}/pbmc.tar.gz")
    with pytest.warns(UserWarning, match=f"not recorded.*SHA-256 {TARBALL_SHA256} and {len(TARBALL)} bytes"):
        pbmc10k_cite(cache_dir=tmp_path, progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        pbmc10k_cite(cache_dir=tmp_path, progress_bar=False)
    assert server.requests == ["/pbmc.tar.gz"]


def test_server_down_names_url_and_expected_path(monkeypatch, tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/pbmc.tar.gz"
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    _point_to(monkeypatch, url, sha256=TARBALL_SHA256)
    with pytest.raises(ConnectionError) as err:
        pbmc10k_cite(cache_dir=tmp_path, progress_bar=False)
    assert url in str(err.value) and str(tmp_path / "pbmc.tar.gz") in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_a_connection_error(server, monkeypatch, tmp_path):
    _point_to(monkeypatch, f"{server.url}/missing.tar.gz", sha256=TARBALL_SHA256)
    with pytest.raises(ConnectionError, match=r"/missing\.tar\.gz \(HTTP 404"):
        pbmc10k_cite(cache_dir=tmp_path, progress_bar=False)
    assert list(tmp_path.iterdir()) == []


def test_registry_entries():
    for name, entry in REGISTRY.items():
        assert entry["url"].startswith("https://") and entry["url"].endswith("/" + entry["file"]), name
        assert entry["licence"] and entry["citation"] and entry["checksum_source"], name
        assert entry["size"] is None or (isinstance(entry["size"], int) and entry["size"] > 0), name
        for key, length in (("sha256", 64), ("md5", 32)):
            assert entry[key] is None or re.fullmatch(f"[0-9a-f]{{{length}}}", entry[key]), (name, key)


def _readme_rows() -> dict[str, list[str]]:
    rows = {}
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 7:
            rows[cells[0].strip("`")] = cells
    return rows


def test_readme_table_matches_registry():
    rows = _readme_rows()
    assert sorted(rows) == sorted(REGISTRY)

    def shown(value):
        return "not recorded" if value is None else str(value)

    for name, entry in REGISTRY.items():
        _, function, file_link, size, sha256, md5, licence = rows[name]
        assert function == f"`indiseek.datasets.{name}()`"
        assert file_link == f"[{entry['file']}]({entry['url']})"
        assert size == shown(entry["size"])
        assert sha256.strip("`") == shown(entry["sha256"]) and md5.strip("`") == shown(entry["md5"])
        assert licence == entry["licence"]
        assert entry["citation"] in " ".join(README.read_text().split())
