"""The simulator's own command line: ``python -m backends.systolic COMMAND``.

  report MODEL [--option k=v ...] [-o DIR]      per-layer table; DIR gets JSON, SCALE-Sim CSVs, PNG
  program MODEL [--option k=v ...]              print the compiled program
  sim --config X.cfg --topology T.csv -o DIR    SCALE-Sim's interface: its config and topology in,
                                                its three reports out (plus JSON and a plot)
  sim-export MODEL -o T.csv                     a SCALE-Sim GEMM topology from any ONNX model
  sim-sweep MODEL --arrays 8x8,32x32 --dataflows os,ws,is [-o sweep.png]
                                                cycles, utilization and energy per configuration
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from ir.errors import CompilerError


def _options(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in pairs:
        if "=" not in p:
            raise CompilerError("bad --option", found=p, expected="key=value")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _build(args: argparse.Namespace, extra: Optional[dict[str, Any]] = None):
    from .api import build
    return build(args.model, {**_options(args.option), **(extra or {})}, batch=args.batch)


def cmd_report(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    exe = _build(args)
    t1 = time.perf_counter()
    rep = exe.report(args.mode)
    t2 = time.perf_counter()
    print(rep.table(all_layers=args.all))
    print(f"(compiled in {t1 - t0:.2f} s, simulated in {1e3 * (t2 - t1):.1f} ms)")
    if args.output:
        files = rep.write(Path(args.output))
        print(f"wrote {', '.join(files)} to {args.output}")
    return 0


def cmd_program(args: argparse.Namespace) -> int:
    print(_build(args).program.text())
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .config import read_scalesim_cfg
    from .simulator import simulate
    from .topology import program_from_topology, read_topology
    cfg, _ = read_scalesim_cfg(Path(args.config))
    cfg = replace(cfg, mode=args.mode or "compat")
    layers = read_topology(Path(args.topology))
    t0 = time.perf_counter()
    rep = simulate(program_from_topology(layers, cfg))
    dt = time.perf_counter() - t0
    print(rep.table())
    print(f"(simulated {len(layers)} layers in {1e3 * dt:.1f} ms)")
    files = rep.write(Path(args.output))
    print(f"wrote {', '.join(files)} to {args.output}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .topology import write_topology
    n = write_topology(_build(args).program, Path(args.output))
    print(f"wrote {n} GEMM layers to {args.output}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    rows = []
    for arr in [a for a in args.arrays.split(",") if a]:
        try:
            r, c = (int(v) for v in arr.lower().split("x"))
        except ValueError:
            raise CompilerError("bad --arrays entry", found=arr, expected="RxC, e.g. 32x32") from None
        for flow in [f for f in args.dataflows.split(",") if f]:
            rep = _build(args, {"rows": r, "cols": c, "dataflow": flow}).report(args.mode)
            t = rep.totals()
            rows.append({"array": f"{r}x{c}", "dataflow": flow, "cycles": t["cycles"],
                         "stall_cycles": t["stall_cycles"], "utilization": t["utilization"],
                         "energy_uj": t["energy_uj"], "latency_us": t["latency_us"],
                         "dram_words": sum(t["dram"].values())})
    print(f"{'array':<9} {'df':<3} {'cycles':>12} {'stall':>11} {'util%':>6} {'energy uJ':>11} {'latency us':>11} "
          f"{'DRAM words':>12}")
    for x in rows:
        print(f"{x['array']:<9} {x['dataflow']:<3} {x['cycles']:>12} {x['stall_cycles']:>11} "
              f"{100 * x['utilization']:>6.1f} {x['energy_uj']:>11.1f} {x['latency_us']:>11.1f} {x['dram_words']:>12}")
    best = min(rows, key=lambda x: x["cycles"])
    print(f"fewest cycles: {best['array']} {best['dataflow']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    if args.output:
        plot = Path(args.output)
        plot = plot if plot.suffix else plot.with_suffix(".png")  # what matplotlib would write
        _plot_sweep(rows, plot)
        print(f"wrote {plot}")
    return 0


def _plot_sweep(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [f"{x['array']}\n{x['dataflow']}" for x in rows]
    fig, axes = plt.subplots(1, 3, figsize=(min(16.0, max(9.0, 1.6 * len(rows))), 3.6))
    for ax, key, title in zip(axes, ("cycles", "utilization", "energy_uj"),
                              ("cycles", "utilization", "energy (uJ)")):
        ax.bar(range(len(rows)), [x[key] * (100 if key == "utilization" else 1) for x in rows])
        ax.set_xticks(range(len(rows)), labels, fontsize=6)
        ax.set_title(title + (" %" if key == "utilization" else ""))
        if key == "cycles":
            ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m backends.systolic") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="cmd", required=True)

    def model_cmd(name: str, help_: str) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help_)
        s.add_argument("model")
        s.add_argument("--option", action="append", default=[], help="target option key=value (repeatable)")
        s.add_argument("--batch", type=int, default=1, help="value of symbolic (batch) dims")
        s.add_argument("--mode", default="", choices=("", "compat", "refined"))
        return s

    s = model_cmd("report", "simulate a model and print the per-layer table")
    s.add_argument("-o", "--output", help="folder for report.json, the SCALE-Sim CSVs and report.png")
    s.add_argument("--all", action="store_true", help="list views too")
    s.set_defaults(fn=cmd_report)
    model_cmd("program", "print the compiled program").set_defaults(fn=cmd_program)
    s = sub.add_parser("sim", help="SCALE-Sim's interface: .cfg + topology CSV in, its reports out")
    s.add_argument("--config", required=True)
    s.add_argument("--topology", required=True)
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--mode", default="", choices=("", "compat", "refined"))
    s.set_defaults(fn=cmd_sim)
    s = model_cmd("sim-export", "write a SCALE-Sim GEMM topology from an ONNX model")
    s.add_argument("-o", "--output", required=True)
    s.set_defaults(fn=cmd_export)
    s = model_cmd("sim-sweep", "cycles, utilization and energy per array size and dataflow")
    s.add_argument("--arrays", default="8x8,16x16,32x32,128x128")
    s.add_argument("--dataflows", default="os,ws,is")
    s.add_argument("-o", "--output", help="PNG plot of the sweep")
    s.add_argument("--json", help="write the sweep's rows as JSON")
    s.set_defaults(fn=cmd_sweep)
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except CompilerError as exc:
        if args.debug:
            raise
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # piped into `head`: stop quietly
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
