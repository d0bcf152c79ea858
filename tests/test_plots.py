"""Figures: `pygenmod bench --json/--plot` and `pygenmod demo --plots` write readable PNGs, and say
what to install when matplotlib is missing."""

import builtins
import importlib.util
import json
import struct
import sys

import numpy as np
import pytest

from pygenmod import _plot, cli
from pygenmod.benchmarks import report, runner

needs_mpl = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason='matplotlib not installed (pip install "pygenmod[plot]")'
)


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])  # IHDR: width, height


def _check_png(path, size=None):
    import matplotlib.image

    w, h = _png_size(path)
    if size is not None:
        assert (w, h) == size
    rgb = matplotlib.image.imread(path)[..., :3]
    colours = np.unique((rgb * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 16 and rgb.std() > 0.03, f"{path} looks blank"


def _row(w, c, ours, seconds, ratio, limit=None, note="", title="a workload"):
    return dict(workload=w, title=title, candidate=c, ours=ours, seconds=seconds, ratio=ratio, limit=limit, note=note)


# every case the chart must draw: three modes, one mode, a missing peer, a limit, no pygenmod time
ROWS = [
    _row(
        "W6a",
        "pygenmod bellman_backup",
        True,
        {"alone": 7.8e-3, "interleaved": 8e-3, "busy": 1.2e-2},
        None,
        0.94,
        title="one dense sweep",
    ),
    _row(
        "W6a",
        "numpy P@V",
        False,
        {"alone": 7.5e-3, "interleaved": 7.9e-3, "busy": 1.5e-2},
        {"alone": 0.96, "interleaved": 0.99, "busy": 1.25},
    ),
    _row("W6a", "quantecon", False, {"alone": 9e-3}, {"alone": 1.15}),
    _row("W1", "pygenmod cpu", True, {"alone": 0.07}, None, title="512 GMM fits " + "x" * 120),
    _row("W1", "scikit-learn loop", False, {"alone": 17.7}, {"alone": 252.0}),
    _row("W1", "pomegranate loop", False, {}, {}, note="missing: pomegranate"),
    _row("W9", "pygenmod", True, {}, None, note="failed: ValueError"),
    _row("W9", "peer", False, {"alone": 1.0}, {}),
]


@needs_mpl
def test_bench_chart_from_rows(tmp_path):
    meta = report.metadata(quick=True, repeats=3, limits=dict(read_bw=3e10, peak_f64=1.5e11))
    path = report.plot(ROWS, tmp_path / "bench.png", meta, dpi=50)
    w, h = _png_size(path)
    assert w == 500 and h > 200
    _check_png(path)
    # a chart of nothing but pygenmod rows (no peer) still renders
    _check_png(report.plot(ROWS[:1], tmp_path / "alone.png", meta, dpi=50))
    assert _png_size(report.plot([], tmp_path / "empty.png", meta, dpi=50))[0] == 500  # --only matched nothing


@needs_mpl
def test_json_round_trip(tmp_path):
    meta = report.metadata(quick=False, repeats=5)
    rows, back = report.read_json(report.write_json(tmp_path / "sub" / "run.json", ROWS, meta))
    assert rows == ROWS and back["machine"]["pygenmod"] and back["run"]["repeats"] == 5
    assert report.main([str(tmp_path / "sub" / "run.json"), str(tmp_path / "again.png"), "40"]) == 0
    assert _png_size(tmp_path / "again.png")[0] == 400  # 10 inches at 40 dpi
    _check_png(tmp_path / "again.png")
    assert report.main([]) == 2


def _absent():
    raise runner.Missing("nolib")


def _tiny_workloads(quick=False):
    a = np.ones(1000)
    return [
        runner.Workload(
            "T1",
            "tiny sum",
            [
                runner.Candidate("pygenmod sum", lambda: a.sum, is_ours=True),
                runner.Candidate("slow peer", lambda: lambda: sum(a.tolist())),
                runner.Candidate("absent peer", _absent),
            ],
            bytes_moved=8000.0,
        )
    ]


def test_run_table_rows_and_progress(capsys):
    rows = runner.run_table(_tiny_workloads(), repeats=1, bandwidth=1e9, modes=("alone",))
    ours, peer, absent = rows
    assert set(ours) == {"workload", "title", "candidate", "ours", "seconds", "ratio", "limit", "note"}
    assert ours["ours"] and ours["ratio"] is None and set(ours["seconds"]) == {"alone"} and ours["limit"] > 0
    assert peer["ratio"]["alone"] == pytest.approx(peer["seconds"]["alone"] / ours["seconds"]["alone"])
    assert absent["seconds"] == {} and absent["ratio"] == {} and "nolib" in absent["note"]
    err = capsys.readouterr().err
    assert "[1/3] T1 pygenmod sum ..." in err and "[3/3] T1 absent peer ..." in err


@needs_mpl
def test_bench_cli_writes_json_and_chart(tmp_path, monkeypatch, capsys):
    from pygenmod import benchmarks
    from pygenmod.benchmarks import machine

    monkeypatch.setattr(benchmarks, "all_workloads", lambda fams=None, quick=False: _tiny_workloads())
    monkeypatch.setattr(machine, "limits", lambda: dict(copy_bw=2e10, read_bw=3e10, peak_f64=1e11, peak_f32=2e11))
    js, png = tmp_path / "run.json", tmp_path / "run.png"
    assert (
        cli.main(["bench", "--only", "T1", "--repeats", "1", "--modes", "alone", "--json", str(js), "--plot", str(png)])
        == 0
    )
    doc = json.loads(js.read_text())
    assert [r["candidate"] for r in doc["rows"]] == ["pygenmod sum", "slow peer", "absent peer"]
    assert doc["meta"]["run"]["limits"]["read_bw"] == 3e10
    assert _png_size(png)[0] == 1000
    _check_png(png)
    assert f"wrote {png}" in capsys.readouterr().out


@needs_mpl
@pytest.mark.parametrize("section", ["mdp", "gmm", "spatial", "sampling", "mcts", "compose"])
def test_demo_figure(section, tmp_path):
    from pygenmod.demos import plots

    dpi = 40
    (path,) = plots.render(tmp_path, [section], dpi=dpi)
    w, h = plots.FIGURES[section][1]
    _check_png(path, (round(w * dpi), round(h * dpi)))


@needs_mpl
def test_demo_cli_plots(tmp_path, capsys, monkeypatch):
    from pygenmod.demos import plots, spatial

    monkeypatch.setattr(spatial, "run", lambda report: report.line("(report skipped)"))  # only the plumbing
    assert cli.main(["demo", "spatial", "--plots", str(tmp_path / "figs")]) == 0
    out = capsys.readouterr().out
    assert "figures: " in out and str(tmp_path / "figs" / "spatial_softmax.png") in out
    _check_png(tmp_path / "figs" / "spatial_softmax.png")
    with pytest.raises(ValueError, match="sections"):
        plots.render(tmp_path, ["nope"])


@pytest.fixture
def no_matplotlib(monkeypatch):
    """matplotlib hidden: not importable, and not already imported."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    real = builtins.__import__

    def fake(name, *args, **kw):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)


def test_missing_matplotlib_says_what_to_install(no_matplotlib, tmp_path, capsys, monkeypatch):
    with pytest.raises(_plot.MissingMatplotlib, match=r'pip install "pygenmod\[plot\]"'):
        _plot.require()
    with pytest.raises(ImportError, match="matplotlib"):
        report.plot(ROWS, tmp_path / "x.png")
    # the commands stop before any work (no benchmark timed, no report printed), exit status 2
    from pygenmod import benchmarks

    monkeypatch.setattr(benchmarks, "all_workloads", lambda *a, **k: pytest.fail("benchmarks ran"))
    assert cli.main(["bench", "--plot", str(tmp_path / "b.png")]) == 2
    assert cli.main(["demo", "--plots", str(tmp_path / "d")]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err.count('pip install "pygenmod[plot]"') == 2 and "bench --plot" in cap.err
    assert not (tmp_path / "b.png").exists() and not (tmp_path / "d").exists()
