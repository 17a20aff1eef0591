#!/usr/bin/env bash
# The GPU check of issue 19 (point 7): one prepared command for a machine with one CUDA GPU, no
# network and a stock image (python3 with torch and transformers, no interp dependencies beyond
# those). Two modes:
#
#   bash scripts/gpu_check.sh --fetch-wheels   # here, with network: the missing packages as
#                                              # wheels into .whl/ (ignored; travels when carried)
#   bash scripts/gpu_check.sh                  # there: install the wheels, run the device tests on
#                                              # CUDA, then the benchmarks at the real Qwen2.5
#                                              # 0.5B and 7B shapes, and print a summary
#
# The main mode fits in 8 minutes: every step runs under `timeout`, a step that fails or runs out
# of time is reported and the next one runs. Logs and JSON results go to $OUT (or runs/gpu_check
# when OUT is unset). Environment: PYTHON (default python3), GPU_CHECK_DEVICE (default cuda),
# GPU_CHECK_SHAPES (default "0.5b 7b"); `--small` runs the benchmarks at tiny shapes (a dry run on
# a CPU: GPU_CHECK_DEVICE=cpu bash scripts/gpu_check.sh --small).
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=${GPU_CHECK_WHEELS:-.whl}
# What interp imports that a CUDA torch image lacks (it has torch, transformers, tokenizers,
# safetensors, accelerate, numpy, scipy, scikit-learn, pandas, pyarrow, einops, jaxtyping, tqdm,
# pytest, sympy, huggingface-hub, fsspec, xxhash, narwhals, ...). Pure-python wheels only, one
# version each; versions that work with transformers 5.17 and huggingface-hub 1.33 there.
MISSING_PACKAGES=(
  transformer-lens==4.3.0
  datasets==5.2.0 # imported by transformer_lens
  dill==0.4.1     # imported by datasets
  multiprocess==0.70.19
  math-verify==0.9.0
  latex2sympy2_extended==1.11.0
  antlr4-python3-runtime==4.13.2
  gguf==0.19.0
  plotly==7.1.0
)
# The device machine's python (README of the device tool): 3.12 on x86-64 Linux.
TARGET_PYTHON=3.12

fetch_wheels() {
  local python=${PYTHON:-.venv/bin/python}
  rm -rf "$WHEELS"
  mkdir -p "$WHEELS"
  "$python" -m pip download --no-deps --only-binary=:all: --python-version "$TARGET_PYTHON" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$WHEELS" "${MISSING_PACKAGES[@]}" || exit 1
  du -ch "$WHEELS"/*.whl | tail -1
  local tree
  tree=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
  echo "working tree (tracked files): $((tree / 1024)) KiB; wheels: $(du -sk "$WHEELS" | cut -f1) KiB"
}

if [ "${1:-}" = "--fetch-wheels" ]; then
  fetch_wheels
  exit 0
fi

SMALL=""
if [ "${1:-}" = "--small" ]; then
  SMALL="--small"
elif [ -n "${1:-}" ]; then
  echo "unknown argument ${1}: use --fetch-wheels (here), --small (a dry run), or nothing" >&2
  exit 2
fi
PYTHON=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
SHAPES=${GPU_CHECK_SHAPES:-"0.5b 7b"}
[ -n "$SMALL" ] && SHAPES=small
STEPS=${GPU_CHECK_STEPS:-"tests bench"}
SITE=${GPU_CHECK_SITE:-/tmp/interp-site}
BUDGET=${GPU_CHECK_BUDGET_S:-420}  # seconds for everything; each step gets at most what is left
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
: >"$OUT/steps.tsv"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# step NAME CAP_SECONDS COMMAND...: run under `timeout` (CAP, or less when the budget runs short,
# keeping 20 s for the summary), print and log to $OUT/NAME.log, record exit status and seconds.
step() {
  local name=$1 cap=$2
  shift 2
  local left=$((BUDGET - SECONDS - 20))
  local limit=$((cap < left ? cap : left))
  if [ "$limit" -lt 10 ]; then
    printf '%s\t%s\t%s\n' "$name" "skipped: no time left" 0 >>"$OUT/steps.tsv"
    return
  fi
  echo "=== $name (at most $limit s)"
  local start=$SECONDS
  # the benchmark's one-line JSON results go to the log only (the summary reads them there)
  timeout -k 5 "$limit" "$@" 2>&1 | tee "$OUT/$name.log" | grep --line-buffered -v '^GPU_SHAPES_RESULT '
  local status=${PIPESTATUS[0]}
  printf '%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - start))" >>"$OUT/steps.tsv"
}

install_wheels() {
  if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" "$WHEELS"/*.whl || return 1
  else
    echo "no wheels in $WHEELS: using the packages already installed"
  fi
  # interp itself runs from this folder (PYTHONPATH); the editable install only adds its metadata
  "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation -e . ||
    echo "(editable install of interp failed; PYTHONPATH holds it)"
  "$PYTHON" - <<'PY'
import importlib.metadata as metadata
import torch
import interp, transformer_lens.model_bridge  # noqa: F401  (fails here if a package is missing)
names = ("torch", "transformers", "transformer-lens", "tokenizers", "huggingface-hub", "datasets")
print(", ".join(f"{n} {metadata.version(n)}" for n in names))
cuda = torch.cuda.is_available()
print(f"CUDA {torch.version.cuda}, available: {cuda}", torch.cuda.get_device_name(0) if cuda else "")
PY
}

export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHON WHEELS SITE
export -f install_wheels
step environment 30 bash -c "nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.sm,clocks.max.sm --format=csv 2>&1; $PYTHON --version; nproc"
step install 90 bash -c install_wheels
for name in $STEPS; do
  case $name in
  tests)
    step tests 150 "$PYTHON" -m pytest tests/test_device.py -q -rfE --tb=short -p no:cacheprovider \
      --durations=8 --interp-device "$DEVICE"
    ;;
  bench)
    for shape in $SHAPES; do
      cap=110
      [ "$shape" = 7b ] && cap=140
      step "bench-$shape" "$cap" "$PYTHON" benchmarks/gpu_shapes.py --shape "$shape" \
        --device "$DEVICE" $SMALL
    done
    ;;
  *) echo "unknown step $name in GPU_CHECK_STEPS (use tests, bench)" >&2 ;;
  esac
done
"$PYTHON" benchmarks/gpu_summary.py "$OUT" | tee "$OUT/summary.txt"
