"""LLVM IR text to optimized object code: the unit of work of a cpu build, importable alone.

A build compiles each distinct kernel function (and the entry points) as its
own small module: parse, verify, optimize at -O3 with LLVM's new pass manager
(loop and SLP vectorization on), emit a relocatable object.  The functions here
take and return only plain data (text, tuples, bytes) and import nothing but
llvmlite, so worker processes started with the ``spawn`` method
(``concurrent.futures.ProcessPoolExecutor``) run them without importing the
compiler: llvmlite serializes LLVM within one process, processes do not.

``Machine`` is what the code is generated for: (triple, cpu, features, opt, reloc).
Errors come back as ``LLVMError`` (a ``RuntimeError``) with LLVM's message.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm

Machine = tuple[str, str, str, int, str]   # triple, cpu, features ("+avx2,-avx512f"), opt level, reloc


class LLVMError(RuntimeError):
    """LLVM refused a module (invalid IR): the first line of its message."""


def init_llvm():
    """llvmlite's binding, with the native target initialized (older llvmlite needs it); returns it."""
    try:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
    except Exception:  # noqa: BLE001 - llvmlite >= 0.44 initializes itself
        pass
    try:  # inline assembly (the AMX tile kernels) needs the native assembly parser
        llvm.initialize_native_asmparser()
    except Exception:  # noqa: BLE001
        pass
    return llvm


@lru_cache(maxsize=None)
def target_machine(machine: Machine) -> llvm.TargetMachine:
    """A shared target machine for compiling (never hand it to an execution engine: that takes it)."""
    return new_target_machine(machine)


def new_target_machine(machine: Machine) -> llvm.TargetMachine:
    """A target machine of one's own (an MCJIT engine owns and frees the one it is given)."""
    triple, cpu, features, opt, reloc = machine
    init_llvm()
    t = llvm.Target.from_triple(triple or llvm.get_process_triple())
    return t.create_target_machine(cpu=cpu or "x86-64", features=features, opt=opt, reloc=reloc,
                                   codemodel="default")


def optimize(text: str, tm: llvm.TargetMachine, opt: int = 3) -> llvm.ModuleRef:
    """Parse, verify and optimize one module (``opt``: the speed level, 3 for -O3)."""
    init_llvm()
    try:
        mod = llvm.parse_assembly(text)
        mod.triple = tm.triple
        mod.verify()
    except RuntimeError as exc:
        raise LLVMError((str(exc).strip().splitlines() or ["?"])[0]) from None
    pto = llvm.create_pipeline_tuning_options(speed_level=opt)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return mod


def compile_ir(text: str, machine: Machine) -> bytes:
    """One module's optimized object code."""
    tm = target_machine(machine)
    return tm.emit_object(optimize(text, tm, machine[3]))


def compile_batch(texts: list[str], machine: Machine) -> list[bytes]:
    """Several modules, one object each (what a worker process is sent)."""
    return [compile_ir(t, machine) for t in texts]


@lru_cache(maxsize=None)
def toolchain_digest() -> str:
    """What besides the IR and the machine decides the object code: LLVM, llvmlite, this pipeline.

    Part of every kernel cache key: a new llvmlite/LLVM or a change to the
    optimization pipeline above (this file) makes earlier entries unreachable.
    """
    h = hashlib.sha256()
    h.update(f"llvmlite {llvmlite.__version__} llvm {llvm.llvm_version_info}\n".encode())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()
