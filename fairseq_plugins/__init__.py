"""fairseq user-dir for DiffusER, DiffuSeq and D3PM: ``--user-dir fairseq_plugins``.

Everything registers itself on import of this package: fairseq imports a
user-dir's ``tasks/`` and ``models/`` only when the package is not imported yet,
and never its criterions. Importing this package also makes fairseq
checkpoints loadable with torch's weights-only loading, and failures to load them one
clear line (see checkpoint_safety).
"""
from fairseq_plugins.checkpoint_safety import allow_fairseq_checkpoint_globals, guard_checkpoint_loading

allow_fairseq_checkpoint_globals()
guard_checkpoint_loading()

from fairseq_plugins import criterions, models, tasks  # noqa: E402,F401  (registers everything, once the allow-list is in place)
