"""fairseq imports every module of this folder when --user-dir fairseq_plugins is given."""
