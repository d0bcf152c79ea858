"""The `pygenmod` command: info, demo, bench."""

from __future__ import annotations

import argparse
import os
import platform
import sys

import pygenmod


def cmd_info(args) -> int:
    from pygenmod import _backend

    print(f"pygenmod {pygenmod.__version__}  (python {platform.python_version()}, {platform.machine()})")
    try:
        from pygenmod import _build_info as bi

        print(
            f"built with {bi.CXX_COMPILER}; CUDA built: {bi.CUDA_BUILT}"
            + (f" (nvcc {bi.CUDA_COMPILER_VERSION}, archs {';'.join(bi.CUDA_ARCHITECTURES)})" if bi.CUDA_BUILT else "")
            + ("; -march=native" if bi.NATIVE else "")
        )
    except ImportError:
        print("build info: not available (extension not built)")
    print("backends:")
    for name, b in _backend.backends().items():
        print(f"  {name:<6} {'yes' if b['available'] else 'no ':<4} {b['reason']}")
    print(
        f"threads: {pygenmod.get_num_threads()} (os.cpu_count()={os.cpu_count()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})"
    )
    if _backend.is_available("cpu"):
        from pygenmod import _cpu_runtime as rt

        print(
            f"CPU SIMD: supported {', '.join(rt.cpu_features()) or 'none detected'}; "
            f"kernels compiled for {rt.compiled_simd()}; thread pool: {rt.started_threads()} workers started"
        )
    try:
        from pygenmod import _cuda_runtime as crt

        n = crt.device_count()
        print(f"CUDA runtime {crt.runtime_version()}; devices: {n}")
        for i in range(n):
            print(f"  [{i}] {crt.device_info(i)}")
    except ImportError:
        pass
    return 0


def _need_matplotlib(flag: str) -> bool:
    """False (and the install command on stderr) when ``flag`` asks for figures without matplotlib."""
    from pygenmod import _plot

    try:
        _plot.require(f"pygenmod {flag}")
    except _plot.MissingMatplotlib as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    return True


def cmd_demo(args) -> int:
    from pygenmod import demos

    if args.plots and not _need_matplotlib("demo --plots"):
        return 2
    return demos.run(args.sections or None, plots=args.plots)


def cmd_bench(args) -> int:
    from pygenmod import benchmarks
    from pygenmod.benchmarks import machine, report

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in benchmarks.runner.MODES]
    if bad or not modes:
        print(
            f"--modes: expected a comma-separated subset of {','.join(benchmarks.runner.MODES)}, got {args.modes!r}",
            file=sys.stderr,
        )
        return 2
    if args.plot and not _need_matplotlib("bench --plot"):
        return 2
    load_before = report.load_average()

    if args.family and "dask" in args.family:  # scale-out rows: LocalClusters, their own table
        from pygenmod.benchmarks import dask as bench_dask

        bench_dask.main(
            ["--fits", "256", "--mdps", "256", "--chunk", "64", "--tasks", "20", "--repeat", "1"] if args.quick else []
        )
        args.family = [f for f in args.family if f != "dask"]
        if not args.family:
            return 0
    ws = benchmarks.all_workloads(args.family or None, quick=args.quick)
    if args.only:
        keep = {w.strip() for w in args.only.split(",")}
        ws = [w for w in ws if w.id in keep]
    if args.skip:
        drop = [t.strip().lower() for t in args.skip.split(",") if t.strip()]
        for w in ws:
            w.candidates = [c for c in w.candidates if not any(t in c.name.lower() for t in drop)]
    print(
        f"pygenmod {pygenmod.__version__} bench on {platform.node()} "
        f"({os.cpu_count()} cpus, {pygenmod.get_num_threads()} threads){'  [quick sizes]' if args.quick else ''}"
    )
    lim = machine.limits()
    print(
        f"machine: copy {lim['copy_bw'] / 1e9:.1f} GB/s (read+write), read {lim['read_bw'] / 1e9:.1f} GB/s; "
        f"matmul {lim['peak_f64'] / 1e9:.0f} GFLOP/s f64, {lim['peak_f32'] / 1e9:.0f} GFLOP/s f32"
    )
    rows = benchmarks.run_table(
        ws, repeats=args.repeats, bandwidth=lim["read_bw"], peak_flops=lim["peak_f64"], modes=modes
    )
    if args.json or args.plot:
        meta = report.metadata(quick=args.quick, repeats=args.repeats, limits=lim, load_before=load_before)
        if args.json:
            print(f"wrote {report.write_json(args.json, rows, meta)}")
        if args.plot:
            print(f"wrote {report.plot(rows, args.plot, meta)}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="pygenmod", description=pygenmod.__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="version, backends, threads, SIMD, CUDA devices").set_defaults(fn=cmd_info)
    d = sub.add_parser("demo", help="run every kernel family on built-in data and print a report")
    d.add_argument("sections", nargs="*", help="only these sections (default: all)")
    d.add_argument(
        "--plots",
        metavar="DIR",
        help='also write one PNG per section into DIR (needs matplotlib: pip install "pygenmod[plot]")',
    )
    d.set_defaults(fn=cmd_demo)
    b = sub.add_parser("bench", help="side-by-side benchmarks against the peer libraries")
    b.add_argument("--family", action="append", help="only this family (repeatable)")
    b.add_argument("--only", help="comma-separated workload ids, e.g. W6a,W7")
    b.add_argument(
        "--skip",
        metavar="NAMES",
        help="comma-separated words: leave out the candidates whose name contains one, e.g. pomegranate",
    )
    b.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    b.add_argument("--repeats", type=int, default=None, help="timed repeats per candidate (default 5)")
    b.add_argument("--json", metavar="FILE", help="write the measured rows, machine and versions as JSON")
    b.add_argument(
        "--plot",
        metavar="FILE.png",
        help='write a chart of the speed-ups (needs matplotlib: pip install "pygenmod[plot]")',
    )
    b.add_argument(
        "--modes",
        default="alone,interleaved,busy",
        help="timing modes, comma-separated: alone, interleaved (between BLAS/torch calls), "
        "busy (one core kept busy) (default: all three)",
    )
    b.set_defaults(fn=cmd_bench)
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
