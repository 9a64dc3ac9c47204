"""Imports every pass module so their ``@register_pass`` decorators run."""

from . import cse, dce, fold_constants, remove_identity  # noqa: F401
