#!/usr/bin/env bash
# The prepared accelerator benchmark (issues 16, 23): the real loop on synthetic data vs its bare step and a resumed run
# vs an uninterrupted one, our jitted train step vs the same model in PyTorch on the same device, batch and precision,
# and the cost of on-device mixing. Prints a table; writes device_check.json,
# device_check.md, device_check.log and each half's JSON under $OUT (default bench/out/device_check).
#
#   bash bench/device_check.sh --prepare   # here, once: the pure-Python wheels the lent machine lacks, into .whl/
#   bash bench/device_check.sh             # on the lent accelerator (see bench/README.md for the exact call)
#   bash bench/device_check.sh --smoke     # tiny sizes, one timed step each, on CPU (tests/test_device_check.py)
#
# Further flags go to bench/device_check.py (--budget_s, --peak_tflops, --compile_timeout_s, --no_torch, ...).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
# Pure-Python packages that the step path and a synthetic run of refine_jax.main import and the lent H200's image
# lacks (its deps absl-py and PyYAML are there; tests/test_synthetic.py checks the rest of that run's imports against
# the image's package list). One version each; the version installed here.
WHEELS=(ml_collections==1.1.0)

if [[ "${1:-}" == "--prepare" ]]; then
  cd "$ROOT"
  mkdir -p .whl
  grep -qxF '/.whl/' .gitignore 2>/dev/null || echo '/.whl/' >> "$(git rev-parse --git-common-dir)/info/exclude"
  for w in "${WHEELS[@]}"; do
    "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$w"
  done
  ls -l .whl
  exit 0
fi

if ! "$PY" -c 'import ml_collections' 2>/dev/null; then
  if compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      "$ROOT"/.whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "ml_collections is not importable and $ROOT/.whl holds no wheels: run 'bash bench/device_check.sh --prepare' first" >&2
    exit 2
  fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
cd "$ROOT"
exec "$PY" -m bench.device_check "$@"
