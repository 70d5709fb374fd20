#!/usr/bin/env bash
# Set up (or reuse) the project's virtual environment, then run one job.
#
#   bash bootstrap.sh demo [ARGS...]   install everything, run `synco demo` on the toy world
#   bash bootstrap.sh test [ARGS...]   install everything, check the import layers and ruff, run the
#                                      test suite in parallel workers (pytest ARGS; -n 0 runs it in one)
#   bash bootstrap.sh setup            install everything, run nothing
#
# Idempotent: the venv (.venv, or $SYNCO_VENV) is reused, and pip runs again only
# when pyproject.toml changed. detectron2 is installed by `synco doctor
# --install-detectron2`, which keeps any detectron2 that is already importable.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
venv="${SYNCO_VENV:-$here/.venv}"
job="${1:-}"
[ $# -gt 0 ] && shift

die() { echo "bootstrap: $*" >&2; exit 1; }

case "$job" in
  demo|test|setup) ;;
  *) die "usage: bash bootstrap.sh demo|test|setup [ARGS...]" ;;
esac

# Python 3.10-3.13; 3.11 is what the project is tested with.
python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3.10 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
       && "$candidate" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null; then
      python="$candidate"; break
    fi
  done
fi
[ -n "$python" ] || die "no Python 3.10-3.13 found (3.11 recommended); install one or set PYTHON=/path/to/python3.11."
"$python" -c 'import venv, ensurepip' 2>/dev/null \
  || die "$python lacks the venv/ensurepip modules; install your distribution's python3-venv package."

stamp="$venv/.synco-installed"
want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.version.split()[0])')"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  # torch + CUDA libraries take about 6 GB.
  free_kb=$(df -Pk "$(dirname "$venv")" | awk 'NR==2 {print $4}')
  [ "${free_kb:-0}" -ge $((8 * 1024 * 1024)) ] \
    || die "need about 8 GB free for the virtual environment in $(dirname "$venv"); $((free_kb / 1024)) MB free."
  echo "bootstrap: creating $venv with $python" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing synco-bench and its dependencies (first run: a few minutes, ~6 GB)" >&2
  log="$venv/pip-install.log"
  if ! { "$venv/bin/python" -m pip install --upgrade pip && "$venv/bin/python" -m pip install -e ".[test]"; } \
       >"$log" 2>&1; then
    grep -v "WARNING: Location" "$log" | tail -n 15 >&2
    die "pip could not install the dependencies (full log: $log); is the package registry reachable?"
  fi
  echo "$want" > "$stamp"
fi

# An importable detectron2 (e.g. a GPU user's source build) is kept as it is.
if ! "$venv/bin/python" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("detectron2") is None)'; then
  "$venv/bin/synco" doctor --install-detectron2 >/dev/null \
    || { "$venv/bin/synco" doctor; die "detectron2 is not usable (see the report above)."; }
fi

case "$job" in
  demo)  exec "$venv/bin/synco" demo "$@" ;;
  test)
    # The architecture first (seconds): layers import only downward, and ruff's checks.
    "$venv/bin/lint-imports" --no-cache || die "an import breaks the layer contract (pyproject.toml, [tool.importlinter])."
    "$venv/bin/ruff" check --quiet synco transfer results benchmarks tests || die "ruff found problems (above)."
    # Two workers on a 2-core machine (at most 4): most tests train on one thread, so the suite takes about
    # half the time; a worker runs a whole module, so a module's shared fixtures are built once.
    workers=$(nproc 2>/dev/null || echo 1); [ "$workers" -gt 4 ] && workers=4
    exec "$venv/bin/python" -m pytest -n "$workers" --dist loadscope "$@" ;;
  setup) "$venv/bin/synco" doctor ;;
esac
