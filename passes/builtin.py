"""Imports every pass module so their ``@register_pass`` decorators run."""

from . import (cse, dce, decompose_variadic, fold_batchnorm, fold_constants,  # noqa: F401
               fold_shape_arithmetic, fuse, fuse_bias, layout_nchwc, plan_memory, remove_identity,
               simplify_algebra, simplify_reshapes)
