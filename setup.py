"""DiffusER (discrete diffusion via edit-based reconstruction) for fairseq.

Installs the fairseq-free core ``diffuser_mt`` and the fairseq user-dir
``fairseq_plugins``. fairseq itself (PyPI ``fairseq-fixed``) is installed by
``make setup`` with ``--no-deps``; its runtime dependencies are listed here.
Exact versions live in ``constraints.txt``.
"""
from setuptools import find_packages, setup

FAIRSEQ_RUNTIME = [
    "cffi",
    "cython",
    "hydra-core",
    "omegaconf",
    "bitarray",
    "regex",
    "packaging",
    "scikit-learn",
    "tensorboardX",
]

setup(
    name="diffuser-mt",
    version="0.1.0",
    description="DiffusER, DiffuSeq and D3PM as fairseq plugins for MT and summarization",
    python_requires=">=3.10",
    packages=find_packages(include=["diffuser_mt", "diffuser_mt.*", "fairseq_plugins", "fairseq_plugins.*"]),
    install_requires=[
        "torch",
        "numpy",
        "sacrebleu",
        "rapidfuzz",
        "rouge-score",
        "sentencepiece",
        "tqdm",
        *FAIRSEQ_RUNTIME,
    ],
    extras_require={"test": ["pytest", "pytest-xdist", "hypothesis", "ruff"], "bench": ["matplotlib"]},
    entry_points={
        "console_scripts": ["diffuser-mt = diffuser_mt.cli:main"],
        # the subcommands of diffuser-mt; revise lives with the fairseq adapters (it loads a checkpoint)
        "diffuser_mt.subcommands": [
            "score = diffuser_mt.metrics",
            "trace = diffuser_mt.traces",
            "revise = fairseq_plugins.revise",
        ],
    },
)
