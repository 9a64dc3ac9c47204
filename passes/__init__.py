"""Graph passes and the pass manager.  See ``passes.manager`` for how to write one."""

from .manager import (PassContext, PassInfo, PassManager, PassStep, all_passes, get_pass,
                      parse_pipeline, register_pass, run_pipeline)

__all__ = ["PassContext", "PassInfo", "PassManager", "PassStep", "all_passes", "get_pass",
           "parse_pipeline", "register_pass", "run_pipeline"]
