#!/usr/bin/env bash
# Install everything repvgg_mm needs into the active Python environment.
#
#   bash tools/setup_env.sh
#
# Idempotent: each step is skipped when what it installs is already importable
# at the right version. The one slow step, building mmcv 2.1.0 with its
# compiled ops from the sdist (~20-30 min on 2 cores), runs once per machine:
# the wheel is cached in $REPVGG_MM_CACHE (default ~/.cache/repvgg_mm) and
# later installs take seconds.
set -euo pipefail

PY=${PYTHON:-python3}
CACHE=${REPVGG_MM_CACHE:-$HOME/.cache/repvgg_mm}
WHEELS="$CACHE/wheels"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MMCV_VERSION=2.1.0
PIP=("$PY" -m pip install --quiet --disable-pip-version-check)

log() { printf '[setup_env] %s\n' "$*"; }

# One Python process probes everything (importing torch is slow): prints the
# names of the steps that are already satisfied.
probe() {  # run from / so that the checkout itself is not on sys.path
  (cd / && "$PY" - "$ROOT" "$MMCV_VERSION") <<'PYEOF' 2>/dev/null || true
import importlib, os, sys
root, mmcv_version = sys.argv[1], sys.argv[2]
def version(name):
    try:
        return importlib.import_module(name).__version__.split('+')[0]
    except Exception:
        return None
ok = []
if version('torch') == '2.14.1' and version('torchvision') == '0.29.1':
    ok.append('torch')
try:
    import pkg_resources  # noqa: F401  (mmengine needs it)
    if version('mmengine') == '0.10.7':
        ok.append('mmengine')
except ImportError:
    pass
try:
    import mmcv, mmcv._ext  # noqa: F401
    if mmcv.__version__ == mmcv_version:
        ok.append('mmcv')
except Exception:
    pass
try:
    import timm, pytest, pytest_timeout, xdist, ftfy, regex, sklearn  # noqa
    import matplotlib  # noqa
    import flake8, isort, prettytable, pre_commit  # noqa
    import onnx, onnxruntime, openvino, nncf  # noqa
    import repvgg_mm
    here = os.path.realpath(os.path.dirname(repvgg_mm.__file__))
    # repvgg_mm must be the editable install of THIS checkout (a CI clone
    # lives in another folder than the developer's checkout).
    if (here == os.path.realpath(os.path.join(root, 'repvgg_mm'))
            and version('mmpretrain') == '1.2.0'
            and version('mmseg') == '1.2.2'
            and version('mmdet') == '3.3.0'):
        ok.append('stack')
except Exception:
    pass
print(' '.join(ok))
PYEOF
}

start=$(date +%s)
present=" $(probe) "
ok() { [[ "$present" == *" $1 "* ]]; }

# 1. torch + torchvision. 2.14.1/0.29.1 is the pair that imports together here
#    (torchvision 0.29.1 is built for torch 2.14.1; older pairs fail to import).
if ok torch; then
  log "torch 2.14.1 + torchvision 0.29.1 present"
else
  log "installing torch 2.14.1 + torchvision 0.29.1"
  "${PIP[@]}" torch==2.14.1 torchvision==0.29.1
fi

# 2. mmengine. It (and mmcv's setup.py) import pkg_resources, which
#    setuptools >= 81 no longer ships: keep setuptools below that.
if ok mmengine; then
  log "mmengine 0.10.7 present"
else
  log "installing mmengine 0.10.7"
  "${PIP[@]}" mmengine==0.10.7 'setuptools<80'
fi

# 3. mmcv 2.1.0 WITH compiled ops (mmseg imports mmcv.ops). No prebuilt wheel
#    exists for this torch, so build the sdist once and cache the wheel.
if ok mmcv; then
  log "mmcv $MMCV_VERSION with compiled ops present"
else
  mkdir -p "$WHEELS"
  wheel=$(ls "$WHEELS"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    log "building mmcv $MMCV_VERSION with ops from source (once per machine; ~20-30 min on 2 cores)"
    "${PIP[@]}" ninja wheel
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    (cd "$build" && "$PY" -m pip download --quiet --no-deps --no-binary :all: \
        --no-build-isolation "mmcv==$MMCV_VERSION" -d .)
    tar -xzf "$build"/mmcv-$MMCV_VERSION.tar.gz -C "$build"
    # torch >= 2.10 headers need C++20; mmcv 2.1.0's setup.py hard-codes 14/17.
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' \
        "$build/mmcv-$MMCV_VERSION/setup.py"
    (cd "$build/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 FORCE_CUDA=0 \
        MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" -m pip wheel --no-deps \
        --no-build-isolation -w "$build/dist" . )
    # Atomic publish into the cache: an interrupted build leaves nothing behind.
    built=$(ls "$build"/dist/mmcv-$MMCV_VERSION-*.whl)
    cp "$built" "$WHEELS/.tmp-$(basename "$built")"
    mv "$WHEELS/.tmp-$(basename "$built")" "$WHEELS/$(basename "$built")"
    wheel="$WHEELS/$(basename "$built")"
  else
    log "using cached mmcv wheel $wheel"
  fi
  "${PIP[@]}" "$wheel"
fi

# 4. mmpretrain, mmsegmentation (+ its undeclared ftfy/regex), mmdetection
#    and this package with its deployment stack (onnx, onnxruntime, openvino,
#    nncf; setup.cfg) and test extras, in editable mode.
if ok stack; then
  log "mmpretrain 1.2.0, mmsegmentation 1.2.2, mmdet 3.3.0, repvgg_mm present"
else
  log "installing mmpretrain 1.2.0, mmsegmentation 1.2.2, mmdet 3.3.0 and repvgg_mm (editable)"
  "${PIP[@]}" mmpretrain==1.2.0 mmsegmentation==1.2.2 mmdet==3.3.0 ftfy regex
  "${PIP[@]}" -e "$ROOT[deploy,tests]"
fi

if [ "$present" != " torch mmengine mmcv stack " ]; then
  "$PY" -c "import mmcv._ext, mmseg.models, mmpretrain.models, mmdet.models, onnxruntime, openvino, nncf, repvgg_mm" \
    || { log "ERROR: the OpenMMLab stack does not import"; exit 1; }
fi
log "ready in $(( $(date +%s) - start )) s"
