"""An ONNX-to-accelerator compiler.

    import compiler
    m = compiler.compile("model.onnx", target="ref")
    outputs = m.run({"input": x})          # dict: output name -> array
    m.save("out/"); m2 = compiler.load("out/")

Packages: ``frontends`` (ONNX import), ``ir`` (graph IR, op registry,
interpreter), ``passes`` (optimizations), ``backends`` (targets), ``runtime``
(compiled modules).  The CLI is ``python -m compiler --help``.
"""

from ir.errors import ArtifactError, BackendError, CompilerError, InputError

from .driver import CompileResult, build, compile, load
from .version import __version__

__all__ = ["ArtifactError", "BackendError", "CompileResult", "CompilerError", "InputError", "__version__", "build", "compile", "load"]
