#!/usr/bin/env bash
# benchmarks/gpu_check.py on a lent GPU machine (the tool library's `device`), run from the repo root:
#
#   make device-bundle      # here, once: .whl/ (benchmarks/device_bundle.sh)
#   run(command="bash benchmarks/gpu_device.sh COMMIT", carry=[".whl"], timeout_s=590)
#
# COMMIT is this tree's `git rev-parse --short HEAD`, written into the command here. Arguments after
# it go to gpu_check.py (`--cpu-pack` runs the whole path on CPUs, to try this script on a CPU).
#
# The image's python3 (3.12) holds torch, timm, onnxruntime, numpy, pandas and PIL; .whl/ adds what it
# lacks, installed under /tmp/site with tunefleet itself (no network there). The table and the whole
# log come back in $OUT (gpu_table.md, gpu_check.log); append the table to RESULTS.md here, where the
# commit is known (the copy there has no .git, so the commit is passed in).
set -uo pipefail
export TUNEFLEET_COMMIT="commit ${1:-unknown}" PYTHONUNBUFFERED=1
out=${OUT:-/tmp/gpu-check-out}
site=/tmp/site
mkdir -p "$site" "$out"
{
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl &&
    for packed in .whl/*.tar.xz; do tar -xJf "$packed" -C "$site"; done &&
    PYTHONPATH=$site python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --upgrade --target "$site" .
} || { echo "gpu_device: installing .whl/ and tunefleet failed"; exit 3; }
export PYTHONPATH=$site
python3 - <<'PY'
import onnxruntime, pydantic, ray, timm, torch
print("python3 torch", torch.__version__, "cuda", torch.cuda.is_available(), "timm", timm.__version__,
      "onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers(), "ray", ray.__version__)
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "cpus $(nproc); /dev/shm $(df -h /dev/shm | awk 'NR == 2 {print $2}')"
python3 benchmarks/gpu_check.py --no-write --table-out "$out/gpu_table.md" "${@:2}" 2>&1 | tee "$out/gpu_check.log"
exit "${PIPESTATUS[0]}"
