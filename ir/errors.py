"""One error hierarchy for everything the compiler reports to a user.

Every error names its subject, what was expected, what was found and, where we
can, a hint.  The CLI prints ``str(error)`` as one line and exits with code 1,
so messages must make sense without a traceback.
"""

from __future__ import annotations


class CompilerError(Exception):
    """Root of all errors the compiler raises on purpose.

    Anything else escaping the compiler is a bug in the compiler, not in the
    user's input.
    """

    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        subject: str | None = None,
        expected: str | None = None,
        found: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.subject = subject
        self.expected = expected
        self.found = found
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        parts = []
        if self.subject:
            parts.append(f"{self.subject}: {self.message}")
        else:
            parts.append(self.message)
        if self.expected is not None or self.found is not None:
            detail = []
            if self.expected is not None:
                detail.append(f"expected {self.expected}")
            if self.found is not None:
                detail.append(f"found {self.found}")
            parts.append("; " + ", ".join(detail))
        if self.hint:
            parts.append(f" (hint: {self.hint})")
        return "".join(parts)


class ModelLoadError(CompilerError):
    """The model file is missing, unreadable, or not a valid ONNX model."""

    kind = "model error"


class UnsupportedOpError(CompilerError):
    """The model uses ops the frontend (or a backend) cannot handle.

    ``ops`` maps ``(domain, op_type, opset)`` to the node names using it, so a
    caller can list every missing op at once.
    """

    kind = "unsupported"

    def __init__(self, message: str, *, ops: dict | None = None, **kw) -> None:
        self.ops = ops or {}
        super().__init__(message, **kw)


class ImportError_(CompilerError):
    """The model is valid ONNX but something in it cannot be imported."""

    kind = "import error"


class TypeInferenceError(CompilerError):
    """An op's shape/type rule rejected its inputs or attributes."""

    kind = "type error"


class VerificationError(CompilerError):
    """The IR broke one of its invariants (usually a bug in a pass)."""

    kind = "verification error"


class IRParseError(CompilerError):
    """Textual IR could not be parsed."""

    kind = "parse error"


class InputError(CompilerError):
    """Inputs given at run time do not match what the model expects."""

    kind = "input error"


class ExecutionError(CompilerError):
    """An op failed while running (for example an index out of range)."""

    kind = "runtime error"


class PassError(CompilerError):
    """A pass pipeline is malformed or a pass failed."""

    kind = "pass error"


class BackendError(CompilerError):
    """A target cannot compile or run the graph it was given."""

    kind = "backend error"


class ArtifactError(CompilerError):
    """A saved compiled artifact is missing, corrupt or from another version."""

    kind = "artifact error"
