#!/bin/bash
# One call on a lent GPU toward the shipped checkpoint: configs/moving_mnist.yaml's GPU recipe alone on the GPU
# for MINUTES (default 7; the H200's 6-minute run, sharing its GPU, gave MSE 47.4), with the CUDA-marked tests
# beside its first minutes. About MINUTES + 1.5 minutes in all (a run still going MINUTES + 2 minutes in is
# stopped, saving `last`): keep that under the device's per-call limit.
#   run: bash benchmarks/gpu_recipe.sh 7      (carry .whl and .gpu: see benchmarks/gpu_setup.sh)
# Results in $OUT: recipe.tar (best, last, metrics.jsonl, config.yaml, train.log) and tests_gpu.log. Score the
# best here: framegru eval configs/moving_mnist.yaml --checkpoint recipe/best.safetensors --data mm_test.npy --json
set -u
MINUTES=${1:-7}
source benchmarks/gpu_setup.sh

stamp "GPU recipe, $MINUTES minutes"
timeout -s INT $(( MINUTES * 60 + ${GRACE:-120} )) framegru run configs/moving_mnist.yaml train.time_budget_minutes=$MINUTES \
  run.dir=/tmp/runs/recipe > /tmp/recipe.log 2>&1 &
RUN=$!
sleep 30  # the probe times the run before the tests load the GPU
timeout 90 python3 -m pytest -q -p no:cacheprovider -m gpu tests > $OUT/tests_gpu.log 2>&1; echo "rc $?" >> $OUT/tests_gpu.log
stamp "gpu tests"; tail -4 $OUT/tests_gpu.log
wait $RUN; echo "recipe rc $?"
stamp "trained"
cp /tmp/recipe.log /tmp/runs/recipe/train.log
tar -C /tmp/runs -cf $OUT/recipe.tar recipe/best.safetensors recipe/last.safetensors recipe/metrics.jsonl \
  recipe/config.yaml recipe/train.log
tr '\r' '\n' < /tmp/recipe.log | grep -v '^\s*$' | grep -v '━' | head -9; cat /tmp/runs/recipe/metrics.jsonl
stamp packed
