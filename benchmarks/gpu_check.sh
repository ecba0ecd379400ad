#!/usr/bin/env bash
# The CUDA check of the trainer, ready for a lent GPU machine: the CUDA tests, then the speed of
# eager fp32 against bf16 autocast + channels_last + torch.compile, the cost of deterministic
# kernels, and the validators' cost, on the paper's ResNet-101 DeepLab-v2. About 8 minutes on an H200.
#
# Here, once (the GPU machine reaches no registry and lacks pydantic; its Python is 3.12):
#     bash benchmarks/gpu_check.sh --fetch-wheels        # pydantic's wheels into .whl/ (git-ignored)
# There, from the repository root, with .whl carried along:
#     bash benchmarks/gpu_check.sh                       # logs into $OUT (or /tmp/gpu_check)
set -euo pipefail

if [[ "${1:-}" == "--fetch-wheels" ]]; then
    for wheel in pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5; do
        python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            -d .whl "$wheel"
    done
    exit 0
fi

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
logs="${OUT:-/tmp/gpu_check}"
mkdir -p "$logs"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$logs/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$logs/gpu.txt"

# CUDA tests (the rest of the suite runs on CPU in CI); Ray and Optuna are not on that machine.
python3 -m pytest -q -p no:cacheprovider tests/advent/test_trainer.py tests/advent/test_validators.py \
    tests/advent/test_evaluation.py 2>&1 | tee "$logs/tests.txt"

speed=(--device cuda --backbone resnet101 --size 1024 512 --batch 1 --steps 10 --rounds 3)
python3 benchmarks/trainer_speed.py "${speed[@]}" --methods source_only advent_minent 2>&1 | tee "$logs/trainer_speed.txt"
python3 benchmarks/trainer_speed.py "${speed[@]}" --methods advent_minent --deterministic 2>&1 | tee "$logs/deterministic.txt"
python3 benchmarks/validator_cost.py --device cuda --rounds 5 2>&1 | tee "$logs/validator_cost.txt"
