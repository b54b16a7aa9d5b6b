"""DiffusER core: edit corruption, tagging, decoding, diffusion maths and metrics.

Pure torch/numpy. Nothing in this package imports fairseq; the fairseq
adapters live in ``fairseq_plugins`` and import from here.
"""

__version__ = "0.1.0"
