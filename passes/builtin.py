"""Imports every pass module so their ``@register_pass`` decorators run."""

from . import (  # noqa: F401
    cse, dce, decompose_variadic, expand_functions, fold_batchnorm, fold_constants, fold_shape_arithmetic, fuse,
    fuse_bias, layout_nchwc, layout_nhwc, lower_conv_transpose, plan_memory, remove_identity, scheduling, simplify_algebra,
    simplify_reshapes,
)
