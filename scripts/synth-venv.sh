#!/usr/bin/env bash
# Makes sure a Python that can run the synthetic turntable renderer (shared/synth/make_turntable.py, found in a
# folder above the repository or at OPENSCAN_SYNTH_DIR) exists, for the ground-truth accuracy test. Looks, in
# this order, at OPENSCAN_SYNTH_PYTHON, .venv-synth/ in the repository and a synth-venv/ folder above it (the
# same order tests/conftest.py uses); builds .venv-synth/ from the renderer's pinned requirements when none works.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

synth_dir="${OPENSCAN_SYNTH_DIR:-}"
dir="$repo"
while [ -z "$synth_dir" ] && [ "$dir" != "/" ]; do
  dir=$(dirname "$dir")
  [ -f "$dir/shared/synth/make_turntable.py" ] && synth_dir="$dir/shared/synth"
done
if [ -z "$synth_dir" ]; then
  echo "synthetic-set renderer not found (shared/synth above the repository, or OPENSCAN_SYNTH_DIR):" \
       "the ground-truth accuracy test will be skipped (or fail in CI)." >&2
  exit 0
fi

works() { [ -x "$1" ] && "$1" -c "import embreex, trimesh, skimage, scipy, PIL" 2>/dev/null; }

candidates=("${OPENSCAN_SYNTH_PYTHON:-}" "$repo/.venv-synth/bin/python")
dir="$repo"
while [ "$dir" != "/" ]; do
  dir=$(dirname "$dir")
  candidates+=("$dir/synth-venv/bin/python")
done
for py in "${candidates[@]}"; do
  [ -n "$py" ] && works "$py" && exit 0
done

echo "building .venv-synth for the synthetic-set renderer (once)"
python3 -m venv "$repo/.venv-synth"
"$repo/.venv-synth/bin/pip" install -q --upgrade pip
"$repo/.venv-synth/bin/pip" install -q -r "$synth_dir/requirements.txt"
works "$repo/.venv-synth/bin/python"
