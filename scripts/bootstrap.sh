#!/usr/bin/env bash
# Create .venv with Python 3.12 and the pinned dependencies; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python312() {
  for candidate in "${LAPSE_PYTHON:-}" python3.12 \
      "$(command -v pyenv >/dev/null 2>&1 && pyenv root)"/versions/3.12*/bin/python3.12 \
      /usr/bin/python3.12 /usr/local/bin/python3.12; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
      command -v "$candidate" || echo "$candidate"
      return 0
    fi
  done
  return 1
}

find_uv() {
  if command -v uv >/dev/null 2>&1 && uv --version >/dev/null 2>&1; then command -v uv; return 0; fi
  local base; base=$(python3 -m site --user-base 2>/dev/null || echo "$HOME/.local")
  if [ -x "$base/bin/uv" ]; then echo "$base/bin/uv"; return 0; fi
  return 1
}

UV=$(find_uv) || {
  echo "bootstrap: installing uv from PyPI" >&2
  python3 -m pip install --quiet --user uv >&2 || python3 -m pip install --quiet uv >&2
  UV=$(find_uv)
}
PY312=$(find_python312) || { echo "bootstrap: Python 3.12 not found (set LAPSE_PYTHON)" >&2; exit 1; }

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
  rm -rf .venv
  "$UV" venv --quiet --python "$PY312" .venv
fi
"$UV" pip sync --quiet --compile-bytecode --python .venv/bin/python requirements.lock
"$UV" pip install --quiet --python .venv/bin/python --no-deps -e .
