#!/usr/bin/env bash
# DiffusER on one GPU, under 8 minutes: train a small DiffusER with --fp16 on the default corpus, decode it on CUDA
# and on CPU and check that the decodes agree, train and decode briefly with --amp and --bf16, and write the training
# tokens/s of the AR transformer and of DiffusER (same data, size, batch and --fp16) to a results file.
#
#   benchmarks/gpu_check.sh
#
# Settings (environment): PYTHON (.venv/bin/python), DATA (data-bin/ding.en-de, built from Debian's trans-de-en when
# absent), OUT (benchmarks/results/gpu_check), WORK (a new temporary directory), UPDATES (800 per system).
#
# Agreement of the CUDA and CPU decodes of the same checkpoint (the same sentences, greedy, 12 steps):
#   fp32 on CUDA vs CPU: >= 95% identical hypotheses and mean |score difference| <= 0.01
#   --fp16 on CUDA vs CPU: >= 80% identical hypotheses and mean |score difference| <= 0.05
# (greedy choices flip where two candidates are within rounding of each other; fp16 rounds more).
# fairseq-generate applies --fp16 only: the --amp and --bf16 checkpoints decode in fp32 (their training is the check).
# Results: OUT.json and OUT.md; the script exits non-zero when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
DATA=${DATA:-data-bin/ding.en-de}
OUT=${OUT:-benchmarks/results/gpu_check}
WORK=${WORK:-$(mktemp -d)}
UPDATES=${UPDATES:-800}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

fail() { echo "error: $*" >&2; exit 1; }
"$PYTHON" -c 'import fairseq, torch; assert torch.cuda.is_available()' 2>/dev/null \
  || fail "$PYTHON cannot import fairseq or sees no CUDA device (set PYTHON to the project's environment)"
if [ ! -f "$DATA/manifest.json" ]; then
  [ -d /usr/share/trans/de-en ] || fail "$DATA is absent and so is /usr/share/trans/de-en; copy data-bin/ over"
  "$PYTHON" data_scripts/prepare_ding.py --dest-dir "$DATA"
fi
echo "work directory: $WORK"

COMMON=(--user-dir fairseq_plugins --optimizer adam --adam-betas "(0.9, 0.98)" --lr 5e-4 --lr-scheduler inverse_sqrt
        --warmup-updates 400 --max-tokens 4096 --seed 1 --num-workers 4 --log-format json --log-interval 50
        --no-epoch-checkpoints --disable-validation)
AR=(--task translation --arch transformer_cpu_small --share-all-embeddings --criterion label_smoothed_cross_entropy
    --label-smoothing 0.1)
DIFFUSER=(--task diffuser --arch diffuser_small --criterion diffuser_loss)

train() {  # name, updates, options...
  local name=$1 updates=$2; shift 2
  timeout 240 "$PYTHON" -m fairseq_cli.train "$DATA" "${COMMON[@]}" --max-update "$updates" \
    --save-dir "$WORK/$name" "$@" > "$WORK/$name.train.log" 2>&1 \
    || fail "training $name failed; see $WORK/$name.train.log"
}
generate() {  # name (checkpoint), output, options...: the test split, greedy
  local name=$1 output=$2; shift 2
  timeout 180 "$PYTHON" -m fairseq_cli.generate "$DATA" --user-dir fairseq_plugins --task diffuser \
    --path "$WORK/$name/checkpoint_last.pt" --gen-subset test --batch-size 64 \
    --max-len-b 64 --decode-steps 12 --seed 1 "$@" > "$WORK/$output.generate.log" 2>&1 \
    || fail "decoding $name ($output) failed; see $WORK/$output.generate.log"
}

train transformer "$UPDATES" "${AR[@]}" --fp16
train diffuser "$UPDATES" "${DIFFUSER[@]}" --fp16
generate diffuser cuda_fp32
generate diffuser cuda_fp16 --fp16
generate diffuser cpu --cpu
train diffuser_amp 100 "${DIFFUSER[@]}" --amp
generate diffuser_amp amp --amp
train diffuser_bf16 100 "${DIFFUSER[@]}" --bf16
generate diffuser_bf16 bf16 --bf16

"$PYTHON" - "$WORK" "$OUT" <<'PY'
import json
import re
import sys
from pathlib import Path

import torch

work, out = Path(sys.argv[1]), Path(sys.argv[2])


def tokens_per_second(name):
    records = [json.loads(line.split("| train_inner | ", 1)[1])
               for line in (work / f"{name}.train.log").read_text().splitlines() if "| train_inner | " in line]
    steady = records[1:] or records
    return sum(float(r["wps"]) for r in steady) / len(steady)


def hypotheses(output):
    found = {}
    for line in (work / f"{output}.generate.log").read_text().splitlines():
        match = re.match(r"H-(\d+)\t(\S+)\t?(.*)$", line)
        if match:
            found[int(match.group(1))] = (float(match.group(2)), match.group(3))
    return found


cpu = hypotheses("cpu")
if not cpu:
    sys.exit("error: the CPU decode wrote no hypotheses")
agreement = {}
for output, (min_identical, max_score_gap) in {"cuda_fp32": (0.95, 0.01), "cuda_fp16": (0.80, 0.05)}.items():
    cuda = hypotheses(output)
    if set(cuda) != set(cpu):
        sys.exit(f"error: {output} decoded {len(cuda)} sentences and the CPU {len(cpu)}")
    identical = sum(cuda[i][1] == cpu[i][1] for i in cpu) / len(cpu)
    score_gap = sum(abs(cuda[i][0] - cpu[i][0]) for i in cpu) / len(cpu)
    agreement[output] = {"sentences": len(cpu), "identical": identical, "mean_abs_score_difference": score_gap,
                         "passed": identical >= min_identical and score_gap <= max_score_gap,
                         "tolerance": {"min_identical": min_identical, "max_mean_abs_score_difference": max_score_gap}}
ar, diffuser = tokens_per_second("transformer"), tokens_per_second("diffuser")
results = {
    "benchmark": "benchmarks/gpu_check.sh: --fp16 training throughput and CUDA/CPU decode agreement",
    "device": torch.cuda.get_device_name(0),
    "torch": torch.__version__,
    "train_tokens_per_second": {"transformer": ar, "diffuser": diffuser, "ratio": diffuser / ar},
    "decode_agreement_with_cpu": agreement,
    "amp_and_bf16": {name: bool(hypotheses(name)) for name in ("amp", "bf16")},
}
out.parent.mkdir(parents=True, exist_ok=True)
out.with_suffix(".json").write_text(json.dumps(results, indent=2))
rows = [f"GPU check on {results['device']} (torch {results['torch']})", "",
        "| system | target tokens/s (--fp16) | ratio to transformer |", "|---|---|---|",
        f"| transformer | {ar:.0f} | 1.00 |", f"| diffuser | {diffuser:.0f} | {diffuser / ar:.2f} |", "",
        "| CUDA decode vs CPU | sentences | identical | mean abs score difference | passed |", "|---|---|---|---|---|"]
rows += [f"| {name} | {a['sentences']} | {a['identical']:.1%} | {a['mean_abs_score_difference']:.4f} | {a['passed']} |"
         for name, a in agreement.items()]
rows += ["", f"--amp and --bf16 train and decode: {results['amp_and_bf16']}"]
out.with_suffix(".md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
failed = [name for name, a in agreement.items() if not a["passed"]]
failed += [name for name, ok in results["amp_and_bf16"].items() if not ok]
if failed:
    sys.exit(f"error: GPU check failed: {', '.join(failed)} (see {out.with_suffix('.md')})")
PY
