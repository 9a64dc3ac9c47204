"""Every op family, one file each; ``ir.registry`` imports them all on first use.

One file per family.  Each op's schema, type rule and NumPy reference live
together in that file (see ``ir.registry`` for how to define one).  A new
family is a new file here: every module whose name does not start with an
underscore is imported (``ir.discovery``); helpers shared by families start
with one (``_common``, ``_window``).
"""
