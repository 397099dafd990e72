import matplotlib

matplotlib.use("Agg")

import pytest
from matplotlib.figure import Figure

from indiseek.pl import importance


def _record(method="indiseek", lam=0.1):
    return {
        "setting": 1,
        "method": method,
        "lambda": lam,
        "runs": 2,
        "importance": [0.05, 0.05, 0.2, 0.2, 0.25, 0.25],
        "importance_std": [0.01] * 6,
        "importance_runs": [[0.05, 0.05, 0.2, 0.2, 0.25, 0.25]] * 2,
        "ideal": [2, 3, 4, 5],
    }


def test_single_record_writes_png(tmp_path):
    path = tmp_path / "imp.png"
    fig = importance(_record(), save=path)
    assert isinstance(fig, Figure)
    assert len([a for a in fig.axes if a.get_visible()]) == 1
    assert fig.axes[0].get_title() == "IndiSeek, lambda=0.1"
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_grid():
    records = [_record(m, lam) for m in ("indiseek", "infodisen") for lam in (0.01, 0.1, 1.0)]
    fig = importance(records)
    assert len(fig.axes) == 6
    titles = [a.get_title() for a in fig.axes]
    assert titles[0] == "IndiSeek, lambda=0.01" and titles[5] == "InfoDisen, lambda=1"


def test_estimator_gets_its_own_row():
    critic = {**_record("indiseek", 0.01), "options": {"club_estimator": "critic"}}
    raw = {**_record("indiseek", 0.01), "options": {"club_estimator": "gaussian_raw"}}
    fig = importance([_record("indiseek", 0.01), _record("indiseek", 0.1), critic, raw])
    assert [a.get_title() for a in fig.axes if a.get_visible()] == [
        "IndiSeek, lambda=0.01", "IndiSeek, lambda=0.1", "IndiSeek (critic), lambda=0.01",
        "IndiSeek (raw Z), lambda=0.01",
    ]  # fmt: skip


def test_given_axes():
    fig = Figure()
    axes = fig.subplots(1, 2)
    out = importance([_record(lam=0.1), _record(lam=1.0)], ax=axes)
    assert out is fig
    with pytest.raises(ValueError, match="axes"):
        importance([_record(), _record()], ax=axes[0])
