"""One rank of a multi-process CPU fairseq-train run that also saves its own final parameters.

    python tests/distributed_worker.py OUT.pt <fairseq-train arguments>

fairseq saves checkpoints on rank 0 only; to compare ranks, this records the
Trainer that fairseq builds and writes its model's state_dict to OUT.pt.
"""
import sys

import torch
from fairseq import trainer as fairseq_trainer
from fairseq_cli import train

trainers = []
original_init = fairseq_trainer.Trainer.__init__


def recording_init(self, *args, **kwargs):
    original_init(self, *args, **kwargs)
    trainers.append(self)


if __name__ == "__main__":
    out_path = sys.argv.pop(1)
    fairseq_trainer.Trainer.__init__ = recording_init
    train.cli_main()
    torch.save(trainers[-1].model.state_dict(), out_path)
