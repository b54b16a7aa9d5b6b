"""Criterions; fairseq does not import this folder by itself, fairseq_plugins/__init__.py does."""
from fairseq_plugins.criterions import d3pm_loss, diffuseq_loss, diffuser_loss  # noqa: F401  (imported to register the criterions)
