#!/usr/bin/env bash
# The GPU check in one command: bash tests/gpu/check.sh [--cpu] [--out DIR] [--budget SECONDS]
#
# Installs tinyzoo into the running Python when it is missing (a bare GPU machine: its torch,
# timm and the rest are there, tinyzoo is not; wheels in .whl/ fill any other gap), then runs
# tests/gpu/check.py, which writes gpu-check.json and gpu-check.md into --out (default
# /tmp/tinyzoo-gpu-check). A hard stop 30 s after the budget sends SIGTERM, on which the
# driver writes its report before it exits. See tests/gpu/README.md.
set -uo pipefail

main() {
  cd "$(dirname "$0")/../.." || return 2
  export PYTHONUNBUFFERED=1
  local python="${PYTHON:-}"
  if [ -z "$python" ]; then
    if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
  fi

  local budget="" cpu="" args=("$@") i
  for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[$i]}" in
      --budget) budget="${args[$((i + 1))]:-}" ;;
      --budget=*) budget="${args[$i]#--budget=}" ;;
      --cpu) cpu=1 ;;
    esac
  done
  budget="${budget:-$([ -n "$cpu" ] && echo 240 || echo 330)}"

  if ! "$python" -c "import importlib.metadata as m, tinyzoo, tinyzoo_plugins; assert m.entry_points(group='tinyzoo')" 2>/dev/null; then
    echo "== installing tinyzoo into $("$python" -c 'import sys; print(sys.prefix)')"
    if compgen -G ".whl/*.whl" >/dev/null; then
      "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .whl/*.whl || echo "warning: the wheels in .whl/ did not install"
    fi
    # editable needs setuptools >= 64; an older one still builds a plain install
    "$python" -m pip install -q --no-deps --no-build-isolation --no-index -e . \
      || "$python" -m pip install -q --no-deps --no-build-isolation --no-index . \
      || { echo "error: pip could not install tinyzoo"; return 2; }
  fi

  timeout --signal=TERM --kill-after=20 "$((${budget%.*} + 30))" "$python" tests/gpu/check.py "$@"
  local status=$?
  if [ "$status" -eq 124 ]; then echo "the check ran past its budget and was stopped; the report holds what it measured"; fi
  return "$status"
}

# Everything is in main, read whole before it runs: editing this file during a check cannot break it.
main "$@"
exit $?
