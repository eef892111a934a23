#!/usr/bin/env bash
# Reproduces both built-in pairs from scratch (about 30 minutes on 2 cores). See training/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsx training/prepare-data.ts
/usr/bin/python3 training/train.py --dataset mnist --out models/mnist --classifier-epochs 3 --vae-epochs 5
training/finalize-pair.sh mnist
# FashionMNIST: mirrored clothes are still clothes (not so digits); shifts, then 6 epochs without them.
/usr/bin/python3 training/train.py --dataset fashion --out models/fashion-mnist --skip vae --flip --classifier-epochs 8
/usr/bin/python3 training/train.py --dataset fashion --out models/fashion-mnist --skip vae --init-classifier models/fashion-mnist/classifier.onnx --finetune --flip --classifier-epochs 6
/usr/bin/python3 training/train.py --dataset fashion --out models/fashion-mnist --skip classifier --vae-epochs 5
training/finalize-pair.sh fashion
