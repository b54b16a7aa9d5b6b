"""fairseq user-dir for DiffusER, DiffuSeq and D3PM: ``--user-dir fairseq_plugins``.

Everything registers itself on import of this package: fairseq imports a
user-dir's ``tasks/`` and ``models/`` only when the package is not imported yet,
and never its criterions. Importing this package also makes fairseq
checkpoints loadable with torch's weights-only loading, failures to load them one
clear line and their copies atomic (see checkpoint_safety), a bad input line of fairseq-interactive one
line (see interactive_input), and a training that stops mid-epoch exit cleanly (see clean_exit).
"""
from fairseq_plugins.checkpoint_safety import (
    allow_fairseq_checkpoint_globals,
    guard_checkpoint_loading,
    make_checkpoint_copies_atomic,
)
from fairseq_plugins.clean_exit import install_clean_exit
from fairseq_plugins.interactive_input import install_input_reader

allow_fairseq_checkpoint_globals()
guard_checkpoint_loading()
make_checkpoint_copies_atomic()
install_input_reader()
install_clean_exit()

from fairseq_plugins import criterions, models, tasks  # noqa: E402,F401  (registers everything, once the allow-list is in place)
