#!/usr/bin/env bash
# Fine-tune the demo detector five ways with one budget and seed: base (control), +FINE, +CCTM,
# +Boost, +all. Each run writes runs/ft_<name>/model (weights + sodviz modules beside them).
# Usage: bash benchmarks/finetune_ablation.sh [STEPS] [VARIANTS...]   (CPU: about 2.4 s per step)
set -euo pipefail
steps=${1:-300}
shift || true
variants=${*:-all base boost fine cctm}
declare -A modules=([base]="" [fine]="fine" [cctm]="cctm" [boost]="boost" [all]="fine,cctm,boost")
for name in $variants; do
  HF_HUB_OFFLINE=1 python -m sodviz train --init assets/models/sodviz-demo --modules "${modules[$name]}" \
    --out "runs/ft_$name" --steps "$steps" --batch-size 4 --workers 0 --lr 5e-5 --module-lr-scale 10 \
    --warmup-steps 20 --ema-decay 0.995 --ema-warmup 50 --eval-every "$steps" --seed 0 --no-resume
done
