#!/usr/bin/env bash
# The prepared device check (bench/gpu_check.py says what it runs and prints). From a clean checkout on a machine
# with one NVIDIA GPU and PyTorch:
#   bash bench/gpu_check.sh [--wheels DIR] [--data-root DIR] [--out DIR] [--budget SECONDS]
#   bash bench/gpu_check.sh --dry-run ...      # the same steps at tiny sizes on the CPU (CI runs this)
# --wheels DIR installs, without network, every wheel in DIR whose distribution is not installed yet, into a
# throwaway virtual environment layered over $PYTHON's packages (optrepro from this checkout if $PYTHON lacks
# it); the rest of the arguments go to bench/gpu_check.py.
# Python: $PYTHON, else the repository's .venv, else python3.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --wheels) wheels="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
if [[ -n "${wheels:-}" ]]; then
    missing=()
    for wheel in "$wheels"/*.whl; do
        name="$(basename "$wheel" | cut -d- -f1)"
        "$PYTHON" -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$name" 2>/dev/null \
            || missing+=("$wheel")
    done
    echo "installing ${#missing[@]} missing of $(ls "$wheels"/*.whl | wc -l) wheels from $wheels"
    venv="$(mktemp -d)/venv"
    "$PYTHON" -m venv --without-pip "$venv"
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
    # the venv's own folder first (the wheels), then every folder $PYTHON imports from, .pth files included
    "$PYTHON" -c 'import site, sys; print("import site; " + "; ".join(f"site.addsitedir({p!r})" for p in sys.path
                  if p.endswith("-packages")))' >"$site/_optrepro_parent.pth"
    if [[ ${#missing[@]} -gt 0 ]]; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "${missing[@]}"
    fi
    "$venv/bin/python" -c "import optrepro" 2>/dev/null || echo "$PWD/workflow" >"$site/_optrepro_checkout.pth"
    PYTHON="$venv/bin/python"
fi
start=$(date +%s)
status=0
"$PYTHON" bench/gpu_check.py "${args[@]}" || status=$?
echo "gpu_check.sh: $(( $(date +%s) - start )) s in all, exit status $status"
exit $status
