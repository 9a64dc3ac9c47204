"""Graph passes and the pass manager.  See ``passes.manager`` for how to write one."""

from .instruments import DumpIR, PassInstrument, PrintIRAfter, Timing, VerifyEach
from .manager import (PassContext, PassInfo, PassManager, PassStep, all_passes, get_pass,
                      parse_pipeline, register_pass, run_pipeline)

__all__ = ["DumpIR", "PassContext", "PassInfo", "PassInstrument", "PassManager", "PassStep",
           "PrintIRAfter", "Timing", "VerifyEach", "all_passes", "get_pass", "parse_pipeline",
           "register_pass", "run_pipeline"]
