"""The systolic target's subcommands of ``python -m compiler``: sim, sim-export, sim-sweep.

The compiler's command line looks for a ``commands`` module in every target
package, lists its ``COMMANDS`` (name -> one-line help) and hands a command's
arguments to its ``main``, so it imports no target internals.  The commands
themselves are ``python -m backends.systolic``'s (``__main__.py``).
"""

from __future__ import annotations

from typing import Optional, Sequence

COMMANDS = {
    "sim": "systolic simulator, SCALE-Sim's interface: --config X.cfg --topology T.csv -o DIR",
    "sim-export": "write a SCALE-Sim topology from an ONNX model: MODEL -o T.csv",
    "sim-sweep": "systolic cycles/utilization/energy per array and dataflow: MODEL --arrays 8x8,32x32 "
                 "--dataflows os,ws,is",
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one of ``COMMANDS`` (``argv[0]`` names it)."""
    from .__main__ import main as systolic_main
    return systolic_main(argv, prog="python -m compiler")
