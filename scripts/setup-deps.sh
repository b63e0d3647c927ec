# Sourced by scripts/test (and later scripts): installs what the build and the
# tests need when it is missing, then exports DURUS_PYTHON, the venv's Python
# with the real Durus 4.3.

need=()
[ -f /usr/include/db.h ] || need+=(libdb-dev)
[ -f /usr/include/zlib.h ] || need+=(zlib1g-dev)
if ! command -v python3 >/dev/null 2>&1; then
  need+=(python3 python3-venv python3-dev)
else
  python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
  python3 -c 'import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || need+=(python3-dev)
fi
command -v cc >/dev/null 2>&1 || need+=(gcc)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

venv=.build/durus-venv
if ! "$venv/bin/python" -c 'import durus, durus._persistent; assert durus.__version__ == "4.3"' >/dev/null 2>&1; then
  echo "creating $venv with Durus 4.3"
  rm -rf "$venv"
  mkdir -p .build
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check Durus==4.3
fi
export DURUS_PYTHON="$PWD/$venv/bin/python"
