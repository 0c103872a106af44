#!/usr/bin/env bash
# Install mmbench with the lmms-eval extra into its own venv (default .venv-lmms), on a CPU or a GPU
# machine, and check that lmms-eval, transformers' LLaVA and decord import.  Usage:
#   bash scripts/install_lmms.sh [VENV]
# CPU: torch==2.13.0 (CPU wheel) is installed first; GPU (nvidia-smi works): pip's default CUDA torch.
# The installed torch is pinned while lmms-eval installs, so pip never swaps it for another build.
# On CPU the torchvision wheel pip picks is built for CUDA torch ("operator torchvision::nms does
# not exist"), and transformers then fails to import LLaVA: such a torchvision is uninstalled
# (transformers and lmms-eval's llava_hf work without it).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-lmms}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
. "$venv/bin/activate"
python -m pip install -q --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    python -m pip install -q torch
  else
    python -m pip install -q torch==2.13.0
  fi
fi
torch_version="$(python -c 'import torch; print(torch.__version__.split("+")[0])')"
python -m pip install -q -e ".[lmms]" "torch==${torch_version}"
if ! python -c "import torchvision" >/dev/null 2>&1; then
  echo "install_lmms: torchvision does not import next to this torch; removing it" >&2
  python -m pip uninstall -q -y torchvision
fi
python -c "import transformers, decord, lmms_eval; from transformers import LlavaForConditionalGeneration"
python -m lmms_eval --help >/dev/null
echo "install_lmms: lmms-eval $(python -c 'import importlib.metadata as m; print(m.version("lmms-eval"))') ready in $venv"
