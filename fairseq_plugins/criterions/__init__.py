"""Criterions; fairseq does not import this folder by itself, fairseq_plugins/__init__.py does."""
from fairseq_plugins.criterions import diffuser_loss  # noqa: F401
