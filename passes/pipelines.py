"""The default pass pipeline of each target, in one place.

``ref`` runs only the cleanups (it is the golden answer, so it should run the
model as written); ``cpu`` runs the whole optimization pipeline; ``systolic``
is the pipeline of systolic-array targets (channels-last layout, dataflow
schedules).  Backends take
their ``default_pipeline`` from here; ``--passes`` overrides it.
"""

CLEANUP = "fold-constants,remove-identity,cse,dce"

SIMPLIFY = ("fold-constants,remove-identity,fold-shape-arithmetic,fold-constants,simplify-algebra,"
            "decompose-variadic,fold-batchnorm,fuse-bias,simplify-reshapes,fold-constants,cse,dce")

PIPELINES = {
    "ref": CLEANUP,
    # Shape-free passes (run on graphs whose shapes are only known per call).
    "generic": SIMPLIFY,
    # expand-functions runs on static graphs only (after specialization), where run-time
    # shape values are constants: e.g. Range folds instead of expanding into a Loop.
    "cpu": SIMPLIFY + ",expand-functions,lower-conv-transpose,fold-constants,simplify-algebra,cse,dce,"
                      "layout-nchwc,fold-constants,dce,fuse,dce,schedule,plan-memory",
    # For systolic-array targets (the simulator backend comes next): channels-last convolutions
    # with HWIO weights, then fusion, dataflow/fold schedules and the memory plan.
    "systolic": SIMPLIFY + ",expand-functions,lower-conv-transpose,fold-constants,cse,dce,"
                           "layout-nhwc,simplify-algebra,fold-constants,dce,fuse,dce,schedule,plan-memory",
}
