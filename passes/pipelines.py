"""Pipeline fragments that targets compose into their own pipelines.

Each target owns its pipelines (``Backend.default_pipeline`` and
``generic_pipeline``, e.g. in ``backends/cpu``); ``--passes`` overrides them.
These are the target-independent pieces they share.
"""

# Cleanups only: what the reference target runs (it should run the model as written).
CLEANUP = "fold-constants,remove-identity,cse,dce"

# Simplifications that need no static shapes: run before per-signature specialization.
SIMPLIFY = ("fold-constants,remove-identity,fold-shape-arithmetic,fold-constants,simplify-algebra,"
            "decompose-variadic,fold-batchnorm,fuse-bias,simplify-reshapes,fold-constants,cse,dce")
