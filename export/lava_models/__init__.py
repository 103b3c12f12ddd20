"""Custom Lava processes and models supplied by spikeplastic (imported only by the exporter).

Lava's compiler finds a Process's models by executing every ``.py`` file in the folder of the
Process's module (``magma/compiler/compiler_graphs.py``), so this folder holds nothing but
Process/ProcessModel files: ``third_factor.py`` (learning signals for three-factor rules),
``node_perturbation.py`` (node perturbation's noise current and learning signals),
``lif_subtract.py`` (LIF with snnTorch's delayed subtractive reset, float CPU only) and
``recorder.py`` (a sink writing a Var or port per step to a memory-mapped ``.npy``). Each file
imports Lava at module level; import them only after
:func:`spikeplastic.export._compat.import_lava`.
"""
