"""Per-layer and total results of a simulation: a table, JSON, SCALE-Sim's three CSVs and a plot.

Columns follow SCALE-Sim where it has one.  Its "Total Cycles" is the index of
the last cycle (our stall-free cycles minus one, plus stalls) and its "Overall
Util %" divides by that; the CSVs we write reproduce both so they can be
diffed with SCALE-Sim's own, while the table and JSON give plain counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .config import ArrayConfig
from .model import GemmStats


def _zero_traffic() -> dict[str, int]:
    return {"ifmap_reads": 0, "filter_reads": 0, "ofmap_writes": 0, "ofmap_reads": 0, "vector_reads": 0}


@dataclass
class LayerReport:
    name: str
    kind: str                       # gemm | vector | host | view
    label: str
    dataflow: str = ""
    dims: tuple[int, int, int, int] = (0, 0, 0, 0)   # M, K, N, groups
    folds: int = 0
    macs: int = 0
    compute_cycles: int = 0
    stall_cycles: int = 0
    prefetch_cycles: int = 0
    total_cycles: int = 0
    vector_cycles: int = 0
    mapping_efficiency: float = 0.0
    compute_util_scalesim: float = 0.0
    utilization: float = 0.0        # MACs / (PEs x total cycles)
    sram: dict[str, int] = field(default_factory=_zero_traffic)
    dram: dict[str, int] = field(default_factory=_zero_traffic)
    energy_pj: dict[str, float] = field(default_factory=dict)
    latency_us: float = 0.0
    host_reason: str = ""

    def set_gemm(self, f: dict[str, Any], st: GemmStats, cfg: ArrayConfig) -> None:
        self.dataflow = f["dataflow"]
        self.dims = (f["m"], f["k"], f["n"], f["groups"])
        self.folds, self.macs = st.folds, st.macs
        self.compute_cycles, self.stall_cycles = st.compute_cycles, st.stall_cycles
        self.prefetch_cycles, self.total_cycles = st.prefetch_cycles, st.total_cycles
        self.mapping_efficiency, self.compute_util_scalesim = st.mapping_efficiency, st.compute_util_scalesim
        self.utilization = st.macs / max(1, cfg.rows * cfg.cols * st.total_cycles)
        self.sram.update(st.sram)
        for k, v in st.dram.items():
            self.dram[k] += v

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["dims"] = list(self.dims)
        return d


@dataclass
class Report:
    config: ArrayConfig
    mode: str
    layers: list[LayerReport]

    # ------------------------------------------------------------ totals
    @property
    def total_cycles(self) -> int:
        return sum(r.total_cycles for r in self.layers)

    @property
    def latency_us(self) -> float:
        return self.total_cycles / self.config.clock_mhz

    def totals(self) -> dict[str, Any]:
        t: dict[str, Any] = {"cycles": self.total_cycles,
                             "compute_cycles": sum(r.compute_cycles for r in self.layers),
                             "stall_cycles": sum(r.stall_cycles for r in self.layers),
                             "vector_cycles": sum(r.vector_cycles for r in self.layers),
                             "macs": sum(r.macs for r in self.layers)}
        pes = self.config.rows * self.config.cols
        t["utilization"] = t["macs"] / max(1, pes * t["cycles"])
        # MAC-weighted: the share of the PEs the mapped GEMMs keep busy, over all array layers.
        slots = sum(r.macs / r.mapping_efficiency for r in self.layers if r.kind == "gemm" and r.mapping_efficiency)
        t["mapping_efficiency"] = t["macs"] / slots if slots else 0.0
        for part in ("sram", "dram"):
            t[part] = {k: sum(r.__dict__[part][k] for r in self.layers) for k in _zero_traffic()}
        t["energy_uj"] = sum(r.energy_pj.get("total", 0.0) for r in self.layers) / 1e6
        t["latency_us"] = self.latency_us
        t["host_layers"] = [f"{r.name}: {r.host_reason}" for r in self.layers if r.kind == "host"]
        return t

    def to_json(self) -> dict[str, Any]:
        return {"config": self.config.to_json(), "mode": self.mode, "totals": self.totals(),
                "layers": [r.to_json() for r in self.layers]}

    # ------------------------------------------------------------- table
    def table(self, all_layers: bool = False) -> str:
        """A fixed-width table: one row per array/vector layer (views too with ``all_layers``), then totals.

        Columns: cycles (total, of which compute and stall), utilization, mapping
        efficiency, SRAM reads per operand (ifmap, filter, partial sums) and
        ofmap writes, DRAM words read and written, energy, latency.  A vector
        row names its op where an array row gives its GEMM view.
        """
        c = self.config
        head = (f"{'layer':<30} {'unit':<6} {'df':<3} {'M,K,N,G | op':<20} {'folds':>6} {'cycles':>10} "
                f"{'compute':>10} {'stall':>8} {'util%':>6} {'map%':>6} {'if rd':>9} {'fl rd':>9} {'ps rd':>7} "
                f"{'of wr':>9} {'dram rd':>9} {'dram wr':>9} {'uJ':>8} {'us':>9}")
        lines = [f"systolic {c.name}: {c.rows}x{c.cols}, {c.dataflow or 'per-layer dataflow'}, {c.word} words, "
                 f"SRAM {c.ifmap_sram_kb}/{c.filter_sram_kb}/{c.ofmap_sram_kb} KB, DRAM {c.dram_bw:g} words/cycle, "
                 f"{c.clock_mhz:g} MHz, {self.mode} mode", head, "-" * len(head)]
        for r in self.layers:
            if r.kind == "view" and not all_layers:
                continue
            if r.kind == "host":
                lines.append(f"{r.name[:30]:<30} {'host':<6} {r.label} ({r.host_reason})")
                continue
            gemm = r.kind == "gemm"
            what = ",".join(map(str, r.dims)) if gemm else r.label
            dram_rd = r.dram["ifmap_reads"] + r.dram["filter_reads"] + r.dram["ofmap_reads"] + r.dram["vector_reads"]
            compute = r.compute_cycles if gemm else r.vector_cycles
            map_eff = f"{100 * r.mapping_efficiency:>6.1f}" if gemm else f"{'':>6}"
            lines.append(f"{r.name[:30]:<30} {('array' if gemm else 'vector'):<6} {r.dataflow:<3} "
                         f"{what[:20]:<20} {r.folds:>6} {r.total_cycles:>10} {compute:>10} {r.stall_cycles:>8} "
                         f"{100 * r.utilization:>6.1f} {map_eff} {r.sram['ifmap_reads']:>9} "
                         f"{r.sram['filter_reads']:>9} {r.sram['ofmap_reads']:>7} {r.sram['ofmap_writes']:>9} "
                         f"{dram_rd:>9} {r.dram['ofmap_writes']:>9} {r.energy_pj.get('total', 0) / 1e6:>8.3f} "
                         f"{r.latency_us:>9.2f}")
        t = self.totals()
        lines.append("-" * len(head))
        lines.append(f"total: {t['cycles']} cycles ({t['compute_cycles']} compute, {t['stall_cycles']} stall, "
                     f"{t['vector_cycles']} vector), {t['macs']} MACs, utilization {100 * t['utilization']:.1f}%, "
                     f"mapping efficiency {100 * t['mapping_efficiency']:.1f}%, "
                     f"energy {t['energy_uj']:.2f} uJ, latency {t['latency_us']:.1f} us at {c.clock_mhz:g} MHz")
        sr, dr = t["sram"], t["dram"]
        lines.append(f"SRAM words: reads ifmap {sr['ifmap_reads']}, filter {sr['filter_reads']}, partial sums "
                     f"{sr['ofmap_reads']}; ofmap writes {sr['ofmap_writes']}.  DRAM words: reads ifmap "
                     f"{dr['ifmap_reads']}, filter {dr['filter_reads']}, partial sums {dr['ofmap_reads']}, vector "
                     f"{dr['vector_reads']}; writes {dr['ofmap_writes']} ({c.word_bytes} byte(s) per word)")
        quant = [r for r in self.layers if r.kind == "vector" and "uantizeLinear" in r.label]  # (De)Quantize, Dynamic
        if quant:
            lines.append(f"quantize/dequantize at the integer boundaries: {len(quant)} layer(s) on the vector unit, "
                         f"{sum(r.total_cycles for r in quant)} cycles")
        for h in t["host_layers"]:
            lines.append(f"on the host: {h}")
        return "\n".join(lines)

    # --------------------------------------------------- SCALE-Sim's CSVs
    def write_scalesim_csv(self, directory: Path) -> list[str]:
        """COMPUTE_REPORT.csv, BANDWIDTH_REPORT.csv, DETAILED_ACCESS_REPORT.csv with SCALE-Sim's columns,
        one row per array layer.  Start/stop cycles are laid out as SCALE-Sim does for one layer: SRAM
        traffic from cycle 0 to the layer's last cycle, DRAM reads during the prefetch and the layer."""
        directory.mkdir(parents=True, exist_ok=True)
        comp = ["LayerID, Total Cycles (incl. prefetch), Total Cycles, Stall Cycles, Overall Util %, "
                "Mapping Efficiency %, Compute Util %,"]
        bw = ["LayerID, Avg IFMAP SRAM BW, Avg FILTER SRAM BW, Avg OFMAP SRAM BW, Avg IFMAP DRAM BW, "
              "Avg FILTER DRAM BW, Avg OFMAP DRAM BW,"]
        det = ["LayerID, SRAM IFMAP Start Cycle, SRAM IFMAP Stop Cycle, SRAM IFMAP Reads, SRAM Filter Start Cycle, "
               "SRAM Filter Stop Cycle, SRAM Filter Reads, SRAM OFMAP Start Cycle, SRAM OFMAP Stop Cycle, "
               "SRAM OFMAP Writes, DRAM IFMAP Start Cycle, DRAM IFMAP Stop Cycle, DRAM IFMAP Reads, "
               "DRAM Filter Start Cycle, DRAM Filter Stop Cycle, DRAM Filter Reads, DRAM OFMAP Start Cycle, "
               "DRAM OFMAP Stop Cycle, DRAM OFMAP Writes,"]
        pes = self.config.rows * self.config.cols
        for i, r in enumerate(x for x in self.layers if x.kind == "gemm"):
            total = r.compute_cycles - 1 + r.stall_cycles       # SCALE-Sim's "Total Cycles"
            comp.append(f"{i}, {total + r.prefetch_cycles}, {total}, {r.stall_cycles}, "
                        f"{100 * r.macs / (total * pes)}, {100 * r.mapping_efficiency}, "
                        f"{100 * r.compute_util_scalesim},")
            s, d = r.sram, r.dram
            bw.append(f"{i}, {s['ifmap_reads'] / total}, {s['filter_reads'] / total}, {s['ofmap_writes'] / total}, "
                      f"{d['ifmap_reads'] / (total + r.prefetch_cycles)}, "
                      f"{d['filter_reads'] / (total + r.prefetch_cycles)}, {d['ofmap_writes'] / total},")
            det.append(f"{i}, 0, {total}, {s['ifmap_reads']}, 0, {total}, {s['filter_reads']}, 0, {total}, "
                       f"{s['ofmap_writes']}, {-r.prefetch_cycles}, {total}, {d['ifmap_reads']}, "
                       f"{-r.prefetch_cycles}, {total}, {d['filter_reads']}, 0, {total}, {d['ofmap_writes']},")
        files = {"COMPUTE_REPORT.csv": comp, "BANDWIDTH_REPORT.csv": bw, "DETAILED_ACCESS_REPORT.csv": det}
        for name, lines in files.items():
            (directory / name).write_text("\n".join(lines) + "\n")
        return list(files)

    def write(self, directory: Path, plot: bool = True) -> list[str]:
        """The JSON report, the three CSVs and (with matplotlib) the plot, into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "report.json").write_text(json.dumps(self.to_json(), indent=1) + "\n")
        files = ["report.json"] + self.write_scalesim_csv(directory)
        if plot and self.plot(directory / "report.png") is not None:
            files.append("report.png")
        return files

    def plot(self, path: Path) -> Optional[Path]:
        """Per-layer cycles (compute and stall) and utilization as a PNG; None without matplotlib."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return None
        rows = [r for r in self.layers if r.kind in ("gemm", "vector")]
        xs = range(len(rows))
        fig, ax = plt.subplots(figsize=(max(6, 0.22 * len(rows) + 2), 4))
        ax.bar(xs, [r.compute_cycles + r.vector_cycles * (r.kind == "vector") for r in rows], label="compute")
        ax.bar(xs, [r.stall_cycles for r in rows],
               bottom=[r.compute_cycles + r.vector_cycles * (r.kind == "vector") for r in rows], label="stall")
        ax.set_ylabel("cycles")
        ax.set_xlabel("layer")
        ax2 = ax.twinx()
        ax2.plot(list(xs), [100 * r.utilization for r in rows], "k.-", label="utilization %")
        ax2.set_ylabel("utilization %")
        ax2.set_ylim(0, 100)
        c = self.config
        shape = f"{c.rows}x{c.cols}"
        ax.set_title(f"{c.name if c.name == shape else c.name + ' ' + shape} {c.dataflow or 'auto'} {c.word} "
                     f"({self.mode}): "
                     f"{self.total_cycles} cycles, {self.latency_us:.0f} us")
        ax.legend(loc="upper left")
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        return path
