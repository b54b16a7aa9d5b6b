"""fairseq user-dir for DiffusER, DiffuSeq and D3PM: ``--user-dir fairseq_plugins``.

fairseq imports ``tasks/`` and ``models/`` of a user-dir by itself; criterions
and the rest are imported here. Importing this package also makes fairseq
checkpoints loadable with torch's weights-only loading (see checkpoint_safety).
"""
from fairseq_plugins.checkpoint_safety import allow_fairseq_checkpoint_globals

allow_fairseq_checkpoint_globals()

from fairseq_plugins import criterions  # noqa: E402,F401
