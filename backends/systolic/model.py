"""The cycle, traffic and energy model of one GEMM on the array, vectorized per fold.

A GEMM ``[M, K] x [K, N]`` (per group) maps two of its dims onto the ``R x C``
array and streams the third (``T``) through it; the spatial dims are cut into
``row_folds x col_folds`` folds, visited column fold outer, row fold inner
(SCALE-Sim's order):

========  ===========  =====  ===========================  ============================
dataflow  rows x cols  T      stationary block per fold    streamed block / output
========  ===========  =====  ===========================  ============================
``os``    M x N        K      outputs (used_r x used_c)    ifmap rows fr, filter cols fc
``ws``    K x N        M      weights (used_r x used_c)    ifmap cols fr, ofmap cols fc
``is``    K x M        N      inputs (used_r x used_c)     filter rows fr, ofmap rows fc
========  ===========  =====  ===========================  ============================

Every quantity is a NumPy array over the folds, so a layer costs a few array
operations whatever its size; nothing loops per cycle.

**Compatibility mode** (``compat``) reproduces SCALE-Sim v3.0.0's closed forms,
checked against SCALE-Sim's own reports (``tests/systolic/data``):

* every fold, partial or not, costs ``T + R + C - 2`` cycles (os) or
  ``T + 2R + C - 2`` (ws, is: the stationary operand's R-cycle preload is not
  overlapped); SCALE-Sim's "Total Cycles" column is that sum minus one (it
  reports the index of the last cycle);
* SRAM reads: os ifmap ``col_folds*M*K``, filter ``row_folds*N*K``; ws ifmap
  ``col_folds*M*K``, filter ``K*N``; is ifmap ``K*M``, filter ``col_folds*K*N``;
* SRAM ofmap writes: ws/is ``row_folds*M*N`` (each partial sum written, never
  read back: SCALE-Sim does not count the read of a partial sum it accumulates,
  which we reproduce); os ``M*N + folds*(R+C)`` (SCALE-Sim adds the padded
  fold's height plus width per fold, a counting bug we reproduce in this mode);
* mapping efficiency and compute utilization are SCALE-Sim's per-fold averages
  (its ws/is compute utilization divides by ``T + 2R + 2C - 3`` cycles).

**Refined mode** (``refined``) models an array with double-buffered
stationary registers and on-chip partial-sum accumulation:

* folds overlap their fill and drain: each fold issues for ``max(T, used_r)``
  cycles (the next stationary block loads while the current one computes),
  plus one pipeline fill/drain ``R + C - 2`` per GEMM and, for ws/is, one
  initial preload of ``R`` cycles;
* a partial sum accumulated over row folds is read back before it is added
  (ofmap SRAM reads ``(row_folds - 1) * M * N``); os writes each output once;
* a layer whose input is the previous layer's output, small enough to stay in
  half of the ifmap SRAM, reads it from there instead of DRAM (cross-layer
  reuse; decided by ``simulator.simulate``, which sees the layer order).

Both modes share the DRAM and stall model: an operand whose whole matrix fits
in half of its SRAM (the other half prefetches) is loaded once; otherwise its
block is reloaded whenever it changes between consecutive folds.  A fold's
loads overlap the previous fold's compute (double buffering) at ``dram_bw``
words per cycle per operand; what does not fit in that time stalls the array.
Outputs drain the same way.  The first fold's loads are the prefetch that
SCALE-Sim's "Total Cycles (incl. prefetch)" adds.

Groups (grouped and depthwise convolutions, batched matrix products) run one
after another, each as its own GEMM with its own folds: the next group's
first loads and the last outputs' drain are counted as stalls.  SCALE-Sim has
no groups (its "DP" layers are one layer per channel, which this equals).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import ArrayConfig


@dataclass
class GemmStats:
    """What one GEMM costs: the row of every report."""

    macs: int = 0
    folds: int = 0
    compute_cycles: int = 0        # stall-free
    stall_cycles: int = 0
    prefetch_cycles: int = 0       # first fold's loads, before the array starts
    mapping_efficiency: float = 0.0
    compute_util_scalesim: float = 0.0
    sram: dict[str, int] = field(default_factory=dict)   # ifmap_reads, filter_reads, ofmap_writes, ofmap_reads
    dram: dict[str, int] = field(default_factory=dict)   # ifmap_reads, filter_reads, ofmap_writes, ofmap_reads
    # DMA transfers per operand (ifmap, filter, ofmap out, ofmap back in): (count, largest words), per group.
    transfers: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def total_cycles(self) -> int:
        return self.compute_cycles + self.stall_cycles

    def to_json(self) -> dict[str, Any]:
        return {"macs": self.macs, "folds": self.folds, "compute_cycles": self.compute_cycles,
                "stall_cycles": self.stall_cycles, "prefetch_cycles": self.prefetch_cycles,
                "mapping_efficiency": self.mapping_efficiency,
                "compute_util_scalesim": self.compute_util_scalesim, "sram": dict(self.sram),
                "dram": dict(self.dram)}


def mapping(dataflow: str, m: int, k: int, n: int) -> tuple[int, int, int]:
    """(spatial rows, spatial cols, streamed T) of a GEMM under ``dataflow``."""
    return {"os": (m, n, k), "ws": (k, n, m), "is": (k, m, n)}[dataflow]


def _used(total: int, size: int, folds: int) -> np.ndarray:
    """Rows (or columns) of the array each fold uses."""
    u = np.full(folds, size, dtype=np.int64)
    u[-1] = total - size * (folds - 1)
    return u


def _changes(ids: np.ndarray) -> np.ndarray:
    """True where a fold needs a block other than the previous fold's."""
    out = np.ones(ids.shape, dtype=bool)
    out[1:] = ids[1:] != ids[:-1]
    return out


def simulate_gemm(m: int, k: int, n: int, groups: int, dataflow: str, cfg: ArrayConfig,
                  mode: str = "compat", ifmap_words: int = 0, ifmap_on_chip: bool = False) -> GemmStats:
    """Cycles, SRAM/DRAM traffic and stalls of ``groups`` GEMMs ``[m, k] x [k, n]`` (see module doc).

    ``ifmap_words`` is the input's size in DRAM per group when it is smaller than ``m * k``: a
    convolution's input, which the array's feeder expands into the ``[m, k]`` patch matrix on
    chip (each input word is reused by up to KH*KW patches).  DRAM traffic and SRAM residency of
    the ifmap scale by ``ifmap_words / (m * k)``; SRAM reads do not (the array reads patches).
    """
    R, C = cfg.rows, cfg.cols
    sr, sc, T = mapping(dataflow, m, k, n)
    rf, cf = -(-sr // R), -(-sc // C)
    # Per fold, column fold outer and row fold inner.
    fr = np.tile(np.arange(rf), cf)
    fc = np.repeat(np.arange(cf), rf)
    ur = _used(sr, R, rf)[fr]
    uc = _used(sc, C, cf)[fc]
    used = ur * uc
    nf = rf * cf

    # ---- compute cycles
    if mode == "compat":
        per = T + R + C - 2 if dataflow == "os" else T + 2 * R + C - 2
        fold_cycles = np.full(nf, per, dtype=np.int64)
    else:
        fold_cycles = np.maximum(T, ur).astype(np.int64)
        fold_cycles[0] += R + C - 2 + (R if dataflow != "os" else 0)
    util_cycles = T + R + C - 2 if dataflow == "os" else T + 2 * R + 2 * C - 3
    mapping_eff = float(np.mean(used)) / (R * C)
    compute_util = float(np.mean(used * T / (R * C * util_cycles)))

    # ---- SRAM accesses (per group)
    mk, kn, mn = m * k, k * n, m * n
    if dataflow == "os":
        sram = {"ifmap_reads": cf * mk, "filter_reads": rf * kn,
                "ofmap_writes": mn + (nf * (R + C) if mode == "compat" else 0), "ofmap_reads": 0}
    elif dataflow == "ws":
        sram = {"ifmap_reads": cf * mk, "filter_reads": kn, "ofmap_writes": rf * mn,
                "ofmap_reads": 0 if mode == "compat" else (rf - 1) * mn}
    else:
        sram = {"ifmap_reads": mk, "filter_reads": cf * kn, "ofmap_writes": rf * mn,
                "ofmap_reads": 0 if mode == "compat" else (rf - 1) * mn}

    # ---- DRAM traffic: block ids and sizes of each operand per fold
    ratio = min(1.0, ifmap_words / mk) if ifmap_words and mk else 1.0
    if dataflow == "os":
        blocks = {"ifmap": (fr, ur * k, mk), "filter": (fc, uc * k, kn)}
        out_id, out_words, partial = fr + rf * fc, used, False
    elif dataflow == "ws":
        blocks = {"filter": (fr + rf * fc, used, kn), "ifmap": (fr, ur * m, mk)}
        out_id, out_words, partial = fc, uc * m, rf > 1
    else:
        blocks = {"ifmap": (fr + rf * fc, used, mk), "filter": (fr, ur * n, kn)}
        out_id, out_words, partial = fc, uc * n, rf > 1
    loads = {}
    for name, (ids, words, total) in blocks.items():
        if name == "ifmap" and ratio < 1.0:
            words = words * ratio          # fractional per block; totals are rounded once
            total = total * ratio
        if total <= cfg.sram_words(name) // 2:       # resident: each block loaded once
            first = np.zeros(nf, dtype=bool)
            _, idx = np.unique(ids, return_index=True)
            first[idx] = True
            loads[name] = np.where(first, words, 0)
        else:
            loads[name] = np.where(_changes(ids), words, 0)
    if ifmap_on_chip:
        loads["ifmap"] = np.zeros(nf)
    last_of_out = np.ones(nf, dtype=bool)
    last_of_out[:-1] = out_id[1:] != out_id[:-1]
    ofmap_fits = int(out_words.max()) <= cfg.sram_words("ofmap") // 2
    if partial and not ofmap_fits:                   # partial sums spill to DRAM and come back
        stores = out_words.copy()
        reread = np.where(_changes(out_id), 0, out_words)
    else:
        stores = np.where(last_of_out, out_words, 0)
        reread = np.zeros(nf, dtype=np.int64)
    dram = {"ifmap_reads": int(round(float(loads["ifmap"].sum()))), "filter_reads": int(loads["filter"].sum()),
            "ofmap_writes": int(stores.sum()), "ofmap_reads": int(reread.sum())}

    transfers = {name: (int(np.count_nonzero(x)), int(np.ceil(x.max())) if nf else 0)
                 for name, x in (("ifmap", loads["ifmap"]), ("filter", loads["filter"]), ("ofmap", stores),
                                 ("partials", reread))}

    # ---- stalls: fold f's loads overlap fold f-1's compute; its stores overlap fold f+1's.
    bw = cfg.dram_bw
    load_t = np.ceil(np.maximum.reduce([loads["ifmap"], loads["filter"], reread]) / bw).astype(np.int64)
    store_t = np.ceil(stores / bw).astype(np.int64)
    prefetch = int(load_t[0])
    in_stall = np.maximum(0, load_t[1:] - fold_cycles[:-1]).sum() if nf > 1 else 0
    out_stall = np.maximum(0, store_t[:-1] - fold_cycles[1:]).sum() if nf > 1 else 0
    drain = int(store_t[-1])   # the last outputs leave after the array is done
    stalls = int(in_stall + out_stall)

    g = groups
    return GemmStats(
        macs=g * m * k * n, folds=g * nf, compute_cycles=g * int(fold_cycles.sum()),
        stall_cycles=g * stalls + (g - 1) * prefetch + drain * g, prefetch_cycles=prefetch,
        mapping_efficiency=mapping_eff, compute_util_scalesim=compute_util,
        sram={k_: g * v for k_, v in sram.items()}, dram={k_: g * v for k_, v in dram.items()},
        transfers=transfers)


def vector_cycles(elements: int, ops_per_element: float, cfg: ArrayConfig) -> int:
    """Cycles of the vector unit (``cfg.lanes`` lanes, one op per lane per cycle)."""
    return int(np.ceil(elements * ops_per_element / cfg.lanes))


def energy_pj(stats: GemmStats, cfg: ArrayConfig, vector_ops: float = 0.0) -> dict[str, float]:
    """Energy in picojoules by component, from the editable table."""
    e, wb = cfg.energy, cfg.word_bytes
    sram_words = sum(stats.sram.values())
    dram_words = sum(stats.dram.values())
    out = {"mac": stats.macs * e.mac(cfg.word), "sram": sram_words * wb * e.sram_per_byte,
           "dram": dram_words * wb * e.dram_per_byte, "vector": vector_ops * e.vector_op,
           "idle": max(0, stats.total_cycles * cfg.rows * cfg.cols - stats.macs) * e.idle_pe_per_cycle}
    out["total"] = sum(out.values())
    return out
