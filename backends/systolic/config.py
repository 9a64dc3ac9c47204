"""The systolic array's configuration: size, dataflow, SRAMs, word size, DRAM, clock, energy.

One ``ArrayConfig`` comes from, in increasing priority: a preset
(``edge8``, ``edge16``, ``32x32``, ``tpu128``, ``tpu256``), a config file
(our JSON form, or SCALE-Sim's ``.cfg`` INI form), and single options.
``target_info`` turns it into the ``TargetInfo`` the passes read.
"""

from __future__ import annotations

import configparser
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from ir.errors import BackendError
from ir.target import TargetInfo

DATAFLOWS = ("os", "ws", "is")
WORD_BYTES = {"int8": 1, "fp32": 4}
MODES = ("compat", "refined")
CALC_BW = 1e9   # words/cycle: "as much as the array needs" (SCALE-Sim's CALC bandwidth mode)


@dataclass(frozen=True)
class EnergyTable:
    """Energy per event in picojoules (editable; defaults: 45 nm figures after Horowitz, ISSCC 2014,
    scaled per word: an 8-bit MAC 0.23 pJ, a 32-bit float MAC 4.6 pJ, SRAM 5 pJ and DRAM 160 pJ
    per 32-bit word, i.e. per-byte costs times the word size)."""

    mac_int8: float = 0.23
    mac_fp32: float = 4.6
    sram_per_byte: float = 1.25
    dram_per_byte: float = 40.0
    vector_op: float = 0.5          # one vector-unit lane operation
    idle_pe_per_cycle: float = 0.0  # leakage of an idle PE per cycle (0: not modelled)

    def mac(self, word: str) -> float:
        return self.mac_int8 if word == "int8" else self.mac_fp32


@dataclass(frozen=True)
class ArrayConfig:
    """Everything the simulator and the lowering need to know about the array."""

    name: str = "32x32"
    rows: int = 32
    cols: int = 32
    dataflow: str = "ws"               # os | ws | is ("" lets the schedule pass pick per layer)
    ifmap_sram_kb: int = 64
    filter_sram_kb: int = 64
    ofmap_sram_kb: int = 64
    word: str = "int8"                 # int8 | fp32: the width of a word in SRAM and DRAM
    dram_bw: float = 10.0              # words per cycle per operand
    clock_mhz: float = 1000.0
    vector_lanes: int = 0              # 0: as many as the array has columns
    mode: str = "compat"               # compat (SCALE-Sim's counts) | refined
    energy: EnergyTable = field(default_factory=EnergyTable)

    @property
    def word_bytes(self) -> int:
        return WORD_BYTES[self.word]

    @property
    def lanes(self) -> int:
        return self.vector_lanes or self.cols

    def sram_words(self, which: str) -> int:
        kb = {"ifmap": self.ifmap_sram_kb, "filter": self.filter_sram_kb, "ofmap": self.ofmap_sram_kb}[which]
        return kb * 1024 // self.word_bytes

    def check(self) -> "ArrayConfig":
        """Raise a ``BackendError`` naming the first bad value."""
        def bad(what: str, expected: str, found: Any) -> BackendError:
            return BackendError("bad systolic-array configuration", subject=what, expected=expected,
                                found=repr(found))
        for k in ("rows", "cols", "ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb"):
            v = getattr(self, k)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise bad(k, "a positive integer", v)
        if self.dataflow not in DATAFLOWS + ("",):
            raise bad("dataflow", "os, ws or is", self.dataflow)
        if self.word not in WORD_BYTES:
            raise bad("word", "int8 or fp32", self.word)
        if not self.dram_bw > 0:
            raise bad("dram_bw", "words per cycle > 0", self.dram_bw)
        if not self.clock_mhz > 0:
            raise bad("clock_mhz", "a frequency > 0", self.clock_mhz)
        if self.vector_lanes < 0:
            raise bad("vector_lanes", "an integer >= 0", self.vector_lanes)
        if self.mode not in MODES:
            raise bad("mode", "compat or refined", self.mode)
        return self

    def target_info(self) -> TargetInfo:
        kb = 1024
        return TargetInfo(name=f"systolic-{self.name}", kind="systolic", array_rows=self.rows,
                          array_cols=self.cols, dataflow=self.dataflow,
                          sram={"ifmap": self.ifmap_sram_kb * kb, "filter": self.filter_sram_kb * kb,
                                "ofmap": self.ofmap_sram_kb * kb})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> "ArrayConfig":
        d = dict(d)
        energy = EnergyTable(**d.pop("energy", {}))
        known = set(ArrayConfig.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise BackendError("unknown key in a systolic-array config", subject=unknown[0],
                               expected="one of " + ", ".join(sorted(known)))
        return ArrayConfig(energy=energy, **d).check()


PRESETS: dict[str, ArrayConfig] = {
    "edge8": ArrayConfig("edge8", 8, 8, "ws", 16, 16, 16, "int8", 4.0, 500.0),
    "edge16": ArrayConfig("edge16", 16, 16, "ws", 32, 32, 32, "int8", 8.0, 800.0),
    "32x32": ArrayConfig("32x32", 32, 32, "ws", 64, 64, 64, "int8", 10.0, 1000.0),
    # TPU v1-like: 256x256 int8 at 700 MHz with 24 MiB of unified buffer (split here).
    "tpu128": ArrayConfig("tpu128", 128, 128, "ws", 4096, 4096, 2048, "int8", 64.0, 940.0),
    "tpu256": ArrayConfig("tpu256", 256, 256, "ws", 8192, 8192, 8192, "int8", 128.0, 700.0),
}


def read_scalesim_cfg(path: Path) -> tuple[ArrayConfig, dict[str, Any]]:
    """A SCALE-Sim ``.cfg`` file as an ``ArrayConfig`` (plus the fields we keep only for reports).

    SCALE-Sim's words are one byte (its memory model's fixed ``word_size = 1``); a ``USER``
    interface bandwidth gives our DRAM bandwidth; ``CALC`` mode (where SCALE-Sim sizes the bandwidth so
    that the array does not wait, and reports what it needed) gives an unlimited one (``CALC_BW``).
    """
    cp = configparser.ConfigParser()
    try:
        if not cp.read(path):
            raise BackendError("cannot read the SCALE-Sim config", subject=str(path), hint="check the path")
        arch = cp["architecture_presets"]
        mode = cp.get("run_presets", "InterfaceBandwidth", fallback="CALC").strip()
        bw = CALC_BW
        if mode == "USER":
            bw = float(arch.get("Bandwidth", "10").split(",")[0])
        cfg = ArrayConfig(name=cp.get("general", "run_name", fallback=Path(path).stem).strip(),
                          rows=int(arch["ArrayHeight"]), cols=int(arch["ArrayWidth"]),
                          dataflow=arch["Dataflow"].strip(), ifmap_sram_kb=int(arch["IfmapSramSzkB"]),
                          filter_sram_kb=int(arch["FilterSramSzkB"]), ofmap_sram_kb=int(arch["OfmapSramSzkB"]),
                          word="int8", dram_bw=bw)
    except BackendError:
        raise
    except (KeyError, ValueError, configparser.Error) as exc:
        raise BackendError("malformed SCALE-Sim config", subject=str(path), found=str(exc).strip(),
                           hint="it needs [architecture_presets] ArrayHeight, ArrayWidth, "
                                "Ifmap/Filter/OfmapSramSzkB and Dataflow") from None
    return cfg.check(), {"interface_bandwidth": mode}


def read_config_file(path: str) -> ArrayConfig:
    """Our JSON config or a SCALE-Sim ``.cfg`` (by content: JSON starts with ``{``)."""
    p = Path(path)
    if not p.is_file():
        raise BackendError("systolic config file not found", subject=str(p))
    text = p.read_text()
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BackendError("malformed systolic config JSON", subject=str(p), found=str(exc)) from None
        base = PRESETS[data.pop("preset")] if data.get("preset") in PRESETS else ArrayConfig()
        merged = {**asdict(base), **data}
        merged["energy"] = {**asdict(base.energy), **data.get("energy", {})}
        return ArrayConfig.from_json(merged)
    return read_scalesim_cfg(p)[0]


def config_from_options(opts: Mapping[str, Any]) -> ArrayConfig:
    """The target's options (already typed by ``OptionSpec``) as one checked ``ArrayConfig``.

    A preset, then a config file, then every option given explicitly (non-empty / non-zero).
    """
    cfg = PRESETS[opts.get("preset") or "32x32"]
    if opts.get("config"):
        cfg = read_config_file(opts["config"])
    over: dict[str, Any] = {}
    for key in ("rows", "cols", "ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb", "vector_lanes"):
        if opts.get(key):
            over[key] = opts[key]
    for key in ("dataflow", "word", "mode"):
        if opts.get(key):
            over[key] = opts[key]
    for key in ("dram_bw", "clock_mhz"):
        if opts.get(key):
            over[key] = float(opts[key])
    energy = {k[len("energy_"):]: float(v) for k, v in opts.items() if k.startswith("energy_") and v}
    if energy:
        over["energy"] = replace(cfg.energy, **energy)
    if opts.get("dataflow") == "auto":
        over["dataflow"] = ""
    return replace(cfg, **over).check()
