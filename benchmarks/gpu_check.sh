#!/usr/bin/env bash
# The standing GPU check (see benchmarks/gpu_check.py): bash benchmarks/gpu_check.sh [--dry-run] [--out DIR]
# PYTHON=/path/to/python picks the interpreter (default: python on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" benchmarks/gpu_check.py "$@"
