# Sourced by the GPU scripts beside it: installs framegru on the GPU machine (PyTorch is its own; no network)
# and unpacks the data, then prints what the machine is. Run from the repository root.
#
# Prepare, on a machine with pip, two folders that git ignores (list them in .git/info/exclude) and carry them:
#   .whl/  wheels of what its image lacks, for its Python (3.12 there), e.g.
#          pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#            --platform manylinux_2_17_x86_64 -d .whl av pydantic pydantic_core annotated-types \
#            typing-inspection typing_extensions   (the versions pydantic pins together)
#   .gpu/  MNIST/raw/*.gz (gzip of $FRAMEGRU_DATA/MNIST/raw/*) and videos/ (the shared clip, for the tests)
export PYTHONUNBUFFERED=1
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile -e . 2>&1 | tail -3
python3 -c "import framegru_plugins" 2>/dev/null || python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/site . 2>&1 | tail -3
mkdir -p /tmp/data && cp -r .gpu/MNIST .gpu/videos /tmp/data/ && gunzip /tmp/data/MNIST/raw/*.gz
export FRAMEGRU_DATA=/tmp/data
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv
python3 -c "import torch, framegru, av, pydantic; print('torch', torch.__version__, torch.version.cuda, torch.cuda.get_device_name(), 'cudnn', torch.backends.cudnn.version())"
nproc; stamp installed
