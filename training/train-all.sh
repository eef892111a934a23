#!/usr/bin/env bash
# Reproduces both built-in pairs from scratch (about 45 minutes on 2 cores). See training/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsx training/prepare-data.ts
/usr/bin/python3 training/train.py --dataset mnist --out models/mnist --classifier-epochs 3 --vae-epochs 5
training/finalize-pair.sh mnist
/usr/bin/python3 training/train.py --dataset fashion --out models/fashion-mnist --classifier-epochs 6 --vae-epochs 5
# FashionMNIST's classifier underfits with shift augmentation: continue 3 epochs on clean data.
/usr/bin/python3 training/train.py --dataset fashion --out models/fashion-mnist --skip vae --init-classifier models/fashion-mnist/classifier-weights --finetune --classifier-epochs 3
training/finalize-pair.sh fashion
