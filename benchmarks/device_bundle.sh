#!/usr/bin/env bash
# What the lent GPU machine's image lacks for benchmarks/gpu_check.py, as Python 3.12 files in .whl/
# (git-ignored), for the device tool to carry there (`carry: [".whl"]`; benchmarks/gpu_device.sh
# installs them): pydantic and its parts (tunefleet.spaces), and Ray with the packages its import
# needs that the image lacks (the packed-trials row); and timm, whose version the image does not pin.
# The versions are the ones the tests run here.
#
# A call carries at most 64 MiB and Ray's wheel is 79 MB, so its files are repacked as a .tar.xz
# without ray/jars (Ray's Java workers; tunefleet runs Python workers only): about 33 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
out=.whl
names="pydantic pydantic-core annotated-types typing-inspection jsonschema jsonschema-specifications referencing rpds-py ray timm"
pins=$("$py" -c 'import importlib.metadata as m, sys; print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' $names)
rm -rf "$out" && mkdir -p "$out"
platforms=""
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms="$platforms --platform $p"
done
# shellcheck disable=SC2086  # word splitting wanted: the pins and platform flags
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $platforms -d "$out" $pins
wheel=$(ls "$out"/ray-*.whl)
unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
unzip -q "$wheel" -d "$unpacked" && rm "$wheel"
tar -C "$unpacked" --exclude=ray/jars -cf - . | xz -T0 -6 > "$out/$(basename "$wheel" .whl).tar.xz"
ls -l "$out" && du -sh "$out"
