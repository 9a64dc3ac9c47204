"""The execution substrate: what runs compiled code, below every target.

``Module`` runs, times, profiles and saves a compiled model whatever its
target; ``Executable`` is what a target's compiled code implements;
``artifact`` reads and checks a saved artifact's manifest; the weights
format, the native thread pool and the C runtime for embedding
(``runtime/c``) live here too.  Nothing here imports a target, a pass or the
driver (only ``ir``): loading an artifact, which needs its target, is
``compiler.load``.
"""
