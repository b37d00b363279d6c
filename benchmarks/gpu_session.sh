#!/bin/bash
# The script behind benchmarks/LOG.md "On a GPU" (2026-12-04, one H200), as it ran there in one call of 521 s:
# installs, the CUDA tests, two Moving MNIST trainings side by side (the recipe given as overrides, before
# it became configs/moving_mnist.yaml's GPU recipe) with the whole suite beside them, then the engine
# benchmark and the old GPU recipe's pace. Run from the repository root on the GPU machine; results in $OUT.
# Prepare its wheels and data as benchmarks/gpu_setup.sh says.
set -u
source benchmarks/gpu_setup.sh

stamp "gpu tests"
timeout 90 python3 -m pytest -q -p no:cacheprovider -m gpu tests > $OUT/tests_gpu.log 2>&1; echo "rc $?" >> $OUT/tests_gpu.log
tail -8 $OUT/tests_gpu.log

COMMON="model.backbone.patch=8 model.backbone.skips=true model.head.name=warp model.engine.hidden=[128,128] model.engine.kernel=3 model.head.width=128 train.optimizer=muon train.time_budget_minutes=6 train.max_steps=5000 train.eval_every=1000 train.eval_batches=8 data.num_workers=4"
stamp "trainings A and B, side by side, 6 min each"
OMP_NUM_THREADS=4 timeout -s INT 450 framegru run configs/moving_mnist.yaml $COMMON train.batch_size=128 train.lr=0.003 run.dir=/tmp/runs/A > /tmp/A.log 2>&1 &
PA=$!
OMP_NUM_THREADS=4 timeout -s INT 450 framegru run configs/moving_mnist.yaml $COMMON train.batch_size=256 train.lr=0.005 run.dir=/tmp/runs/B > /tmp/B.log 2>&1 &
PB=$!
sleep 20
timeout 330 python3 -m pytest -q -p no:cacheprovider tests > $OUT/tests_full.log 2>&1; echo "rc $?" >> $OUT/tests_full.log
stamp "full suite done"; tail -15 $OUT/tests_full.log
wait $PA; echo "A rc $?"; wait $PB; echo "B rc $?"
stamp "trainings done"
for r in A B; do
  cp /tmp/$r.log /tmp/runs/$r/train.log
  tar -C /tmp/runs -cf $OUT/$r.tar $r/best.safetensors $r/metrics.jsonl $r/config.yaml $r/train.log
  cp /tmp/runs/$r/last.safetensors $OUT/${r}_last.safetensors
  echo "== $r"; tr '\r' '\n' < /tmp/$r.log | grep -v '^\s*$' | grep -v '━' | head -8; cat /tmp/runs/$r/metrics.jsonl
done
stamp packed

{
stamp "engine bench"
timeout 90 framegru bench engine --device cuda --dtype bf16 --variants --compile --repeats 5
stamp "GPU recipe pace"
timeout -s INT 35 framegru run configs/moving_mnist.yaml train.max_steps=40000 run.dir=/tmp/runs/recipe 2>&1 | tr '\r' '\n' | grep -v '^\s*$' | tail -6
stamp end
} > $OUT/extras.log 2>&1
cat $OUT/extras.log
