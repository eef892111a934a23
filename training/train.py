#!/usr/bin/env python3
"""Train a default OOD Lens pair: a small CNN classifier and a convolutional VAE on 32x32 grey images.

Reads the IDX files written by `training/prepare-data.ts` (the engine's own preprocessing), holds out the
last 5,000 training images for calibration (never trained on), and exports ONNX (opset 13, dynamic batch)
plus the raw weights that `training/export-tfjs.ts` turns into TensorFlow.js layers models.

    /usr/bin/python3 training/train.py --dataset mnist --out models/mnist
    /usr/bin/python3 training/train.py --dataset mnist --quick --out /tmp/quick   # a few hundred steps
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
HELD_OUT = 5000  # last N training images: calibration set, never seen in training
LATENT = 16
LABELS = {
    "mnist": [str(i) for i in range(10)],
    "fashion": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class Classifier(nn.Module):
    """conv3-32 → pool → conv3-64 → pool → dense 128 → dense 10 (logits). About 5.5 M multiply-adds."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 8 * 8, 128)
        self.fc2 = nn.Linear(128, classes)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.reshape(x.shape[0], -1)  # channel-major flatten (the TF.js model permutes to match)
        x = self.drop(F.relu(self.fc1(x)))
        return self.fc2(x)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 4, stride=2, padding=1)   # 32 → 16
        self.conv2 = nn.Conv2d(32, 64, 4, stride=2, padding=1)  # 16 → 8
        self.conv3 = nn.Conv2d(64, 64, 4, stride=2, padding=1)  # 8 → 4
        self.mu = nn.Linear(64 * 4 * 4, LATENT)
        self.logvar = nn.Linear(64 * 4 * 4, LATENT)

    def forward(self, x):
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h))
        h = F.relu(self.conv3(h))
        h = h.reshape(h.shape[0], -1)
        return self.mu(h), self.logvar(h)


# Discretised logistic decoder: log-scales below this (in [0, 1] pixel units) are clamped, inside the exported
# models, so that one confidently predicted pixel cannot dominate an image's likelihood.
MIN_LOG_SCALE = -8.0
LEVELS = 256


class Decoder(nn.Module):
    """Nearest upsampling + 3x3 convolutions (no transposed convolutions: identical in ONNX and TF.js).

    likelihood "bernoulli": one output, Bernoulli logits. "discretized-logistic": the logits of the mean and a
    second head with the log-scale, a proper probability over the 256 grey levels, so that −log₂ p(x) is a code
    length in bits, on the same scale as a lossless compressor's (needed by the complexity-corrected score).
    """

    def __init__(self, likelihood="bernoulli"):
        super().__init__()
        self.likelihood = likelihood
        self.fc = nn.Linear(LATENT, 64 * 4 * 4)
        self.conv1 = nn.Conv2d(64, 64, 3, padding=1)  # 8x8
        self.conv2 = nn.Conv2d(64, 32, 3, padding=1)  # 16x16
        self.conv3 = nn.Conv2d(32, 1, 3, padding=1)   # 32x32, logits (of the mean)
        if likelihood == "discretized-logistic":
            self.scale = nn.Conv2d(32, 1, 3, padding=1)  # 32x32, log-scale

    def forward(self, z):
        h = F.relu(self.fc(z)).view(-1, 64, 4, 4)
        h = F.relu(self.conv1(F.interpolate(h, scale_factor=2.0, mode="nearest")))
        h = F.relu(self.conv2(F.interpolate(h, scale_factor=2.0, mode="nearest")))
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        if self.likelihood == "discretized-logistic":
            # clamp(x, min) written as relu(x − min) + min: the TF.js export builds the same two steps.
            return self.conv3(h), F.relu(self.scale(h) - MIN_LOG_SCALE) + MIN_LOG_SCALE
        return self.conv3(h)


class VAE(nn.Module):
    def __init__(self, likelihood="bernoulli"):
        super().__init__()
        self.encoder = Encoder()
        self.decoder = Decoder(likelihood)

    def forward(self, x):
        """Deterministic export: decode the posterior mean."""
        mu, logvar = self.encoder(x)
        out = self.decoder(mu)
        return (*out, mu, logvar) if isinstance(out, tuple) else (out, mu, logvar)


def bernoulli_loglik(logits, x):
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def discretized_logistic_loglik(mean_logits, log_scale, x):
    """Σ log P(x) for x on the grid k/255 under a logistic with mean σ(mean_logits) and scale e^log_scale,
    discretised into 256 bins (the end bins take the tails). Same formula as the engine's scores.ts:
    P = σ(a) − σ(b) = σ(a)·σ(−b)·(1 − e^(b−a)), a, b = (x ± ½/255 − m)/s — stable for any scale."""
    h = 0.5 / (LEVELS - 1)
    m = torch.sigmoid(mean_logits)
    inv_s = torch.exp(-log_scale)
    a = (x + h - m) * inv_s
    b = (x - h - m) * inv_s
    log_cdf_a = F.logsigmoid(a)
    log_sf_b = F.logsigmoid(-b)
    mid = log_cdf_a + log_sf_b + torch.log(-torch.expm1(-2 * h * inv_s))
    ll = torch.where(x < h, log_cdf_a, torch.where(x > 1 - h, log_sf_b, mid))
    return ll.flatten(1).sum(1)


def vae_loglik(out, x):
    return discretized_logistic_loglik(out[0], out[1], x) if isinstance(out, tuple) else bernoulli_loglik(out, x)


def kl_normal(mu, logvar):
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


def batches(n, size, rng):
    order = rng.permutation(n)
    for i in range(0, n, size):
        yield order[i : i + size]


def load_weights(modules, path):
    """Inverse of export_weights: sets the named parameters from <path>.json / <path>.bin, or from the
    initializers of an exported ONNX model (<path> ending in .onnx; one module, names as PyTorch exported them)."""
    if path.endswith(".onnx"):
        import onnx
        from onnx import numpy_helper

        (module,) = modules.values()
        init = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
        module.load_state_dict({name: torch.from_numpy(init[name].copy()) for name in module.state_dict()})
        return
    index = json.load(open(path + ".json"))
    blob = open(path + ".bin", "rb").read()
    for prefix, module in modules.items():
        state = {}
        for entry in index:
            if entry["name"].startswith(prefix + "."):
                count = int(np.prod(entry["shape"])) if entry["shape"] else 1
                arr = np.frombuffer(blob, dtype="<f4", count=count, offset=entry["offset"]).reshape(entry["shape"])
                state[entry["name"][len(prefix) + 1 :]] = torch.from_numpy(arr.copy())
        module.load_state_dict(state)


def train_classifier(x, y, x_test, y_test, epochs, steps_limit, seed, log, init=None, finetune=False, flip=False):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Classifier()
    if init:
        load_weights({"classifier": model}, init)
        log(f"classifier initialised from {init}; test accuracy {accuracy(model, x_test, y_test):.4%}")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    total_steps = epochs * math.ceil(len(x) / 128)
    if finetune:  # continue on clean data with a cosine-decaying learning rate
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
        for group in opt.param_groups:
            group["lr"] = 1e-3
        sched.base_lrs = [1e-3 for _ in opt.param_groups]
    else:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=total_steps)
    losses, step, t0 = [], 0, time.time()
    for epoch in range(epochs):
        model.train()
        for idx in batches(len(x), 128, rng):
            xb = torch.from_numpy(x[idx]).float().div_(255).unsqueeze(1)
            if epoch < epochs - 1 and not finetune:  # small random shifts help generalisation; last epoch on clean data
                dx, dy = rng.integers(-2, 3, size=2)
                xb = torch.roll(xb, shifts=(int(dy), int(dx)), dims=(2, 3))
            if flip:  # mirror half the batch left-right (clothes are symmetric; digits are not: off for MNIST)
                mirror = torch.from_numpy(rng.random(len(idx)) < 0.5)
                xb = torch.where(mirror.view(-1, 1, 1, 1), xb.flip(3), xb)
            loss = F.cross_entropy(model(xb), torch.from_numpy(y[idx]).long())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            step += 1
            if steps_limit and step >= steps_limit:
                break
        acc = accuracy(model, x_test, y_test)
        log(f"classifier epoch {epoch + 1}/{epochs}: loss {np.mean(losses[-200:]):.4f}, test accuracy {acc:.4%}, {step * 128 / (time.time() - t0):.0f} img/s")
        if steps_limit and step >= steps_limit:
            break
    return model.eval(), losses


@torch.no_grad()
def accuracy(model, x, y):
    model.eval()
    correct = 0
    for i in range(0, len(x), 1000):
        xb = torch.from_numpy(x[i : i + 1000]).float().div_(255).unsqueeze(1)
        correct += (model(xb).argmax(1).numpy() == y[i : i + 1000]).sum()
    model.train()
    return correct / len(x)


def train_vae(x, x_test, epochs, steps_limit, seed, log, likelihood="bernoulli", after_epoch=None):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    model = VAE(likelihood)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses, step, t0 = [], 0, time.time()
    for epoch in range(epochs):
        for idx in batches(len(x), 128, rng):
            xb = torch.from_numpy(x[idx]).float().div_(255).unsqueeze(1)
            mu, logvar = model.encoder(xb)
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            elbo = vae_loglik(model.decoder(z), xb) - kl_normal(mu, logvar)
            loss = -elbo.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            if steps_limit and step >= steps_limit:
                break
        test = test_elbo(model, x_test)
        log(f"vae epoch {epoch + 1}/{epochs}: train loss {np.mean(losses[-200:]):.2f}, test ELBO {test:.2f} nats ({-test / (1024 * math.log(2)):.3f} bits/dim), {step * 128 / (time.time() - t0):.0f} img/s")
        if after_epoch:
            after_epoch(model.eval(), epoch + 1)
            model.train()
        if steps_limit and step >= steps_limit:
            break
    return model.eval(), losses


@torch.no_grad()
def test_elbo(model, x):
    """Deterministic ELBO (decoder at the posterior mean), the engine's default estimate."""
    model.eval()
    total = 0.0
    for i in range(0, len(x), 1000):
        xb = torch.from_numpy(x[i : i + 1000]).float().div_(255).unsqueeze(1)
        *out, mu, logvar = model(xb)
        total += (vae_loglik(tuple(out) if len(out) > 1 else out[0], xb) - kl_normal(mu, logvar)).sum().item()
    model.train()
    return total / len(x)


def export_onnx(module, example, path, inputs, outputs):
    module.eval()
    axes = {name: {0: "batch"} for name in inputs + outputs}
    torch.onnx.export(module, example, path, input_names=inputs, output_names=outputs, dynamic_axes=axes, opset_version=13, do_constant_folding=True)


def export_weights(modules, path):
    """All float32 parameters as one little-endian blob + a JSON index (name, shape, offset)."""
    index, blobs, offset = [], [], 0
    for prefix, module in modules.items():
        for name, tensor in module.state_dict().items():
            arr = tensor.detach().cpu().numpy().astype("<f4")
            index.append({"name": f"{prefix}.{name}", "shape": list(arr.shape), "offset": offset})
            blobs.append(arr.tobytes())
            offset += arr.nbytes
    with open(path + ".bin", "wb") as f:
        f.write(b"".join(blobs))
    with open(path + ".json", "w") as f:
        json.dump(index, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["mnist", "fashion"], default="mnist")
    ap.add_argument("--data", default=os.path.join(HERE, ".cache"), help="folder with the *-32.idx files from prepare-data.ts")
    ap.add_argument("--out", required=True)
    ap.add_argument("--classifier-epochs", type=int, default=4)
    ap.add_argument("--vae-epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quick", action="store_true", help="a few hundred steps; asserts that both losses fall")
    ap.add_argument("--skip", choices=["classifier", "vae"], action="append", default=[])
    ap.add_argument("--held-out", type=int, default=HELD_OUT, help="last N training images kept for calibration")
    ap.add_argument("--init-classifier", help="start from these exported classifier weights (path without .json/.bin, or a classifier.onnx)")
    ap.add_argument("--finetune", action="store_true", help="no shifts, learning rate 1e-3 decaying to 0 (cosine)")
    ap.add_argument("--flip", action="store_true", help="classifier: random left-right mirroring (FashionMNIST)")
    ap.add_argument("--likelihood", choices=["bernoulli", "discretized-logistic"], default="bernoulli", help="VAE decoder likelihood (the built-in pairs: bernoulli; see training/README.md)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    log_path = os.path.join(args.out, "training-log.txt")
    log_file = open(log_path, "a")

    def log(msg):
        print(msg, flush=True)
        log_file.write(msg + "\n")
        log_file.flush()

    d = args.data
    x_all = read_idx(os.path.join(d, f"{args.dataset}-train-images-32.idx"))
    y_all = read_idx(os.path.join(d, f"{args.dataset}-train-labels.idx"))
    x_test = read_idx(os.path.join(d, f"{args.dataset}-test-images-32.idx"))
    y_test = read_idx(os.path.join(d, f"{args.dataset}-test-labels.idx"))
    x_train, y_train = x_all[: len(x_all) - args.held_out], y_all[: len(y_all) - args.held_out]
    if args.quick:
        x_test, y_test = x_test[:2000], y_test[:2000]
    log(f"{args.dataset}: {len(x_train)} training images ({args.held_out} held out for calibration), {len(x_test)} test, threads={args.threads}")
    steps = 120 if args.quick else 0
    quick_epochs = max(1, math.ceil(steps * 128 / len(x_train)))  # small subsets need several passes
    metrics_path = os.path.join(args.out, "training-metrics.json")
    metrics = json.load(open(metrics_path)) if os.path.exists(metrics_path) else {}
    metrics.update({"dataset": args.dataset, "seed": args.seed, "heldOut": args.held_out, "trainImages": len(x_train)})
    example = torch.zeros(2, 1, 32, 32)

    def write_metrics():
        with open(metrics_path + ".tmp", "w") as f:
            json.dump(metrics, f, indent=2)
        os.replace(metrics_path + ".tmp", metrics_path)

    if "classifier" not in args.skip:
        clf, losses = train_classifier(x_train, y_train, x_test, y_test, quick_epochs if args.quick else args.classifier_epochs, steps, args.seed, log, args.init_classifier, args.finetune, args.flip)
        if args.quick:
            first, last = np.mean(losses[:10]), np.mean(losses[-10:])
            assert last < 0.5 * first, f"classifier loss did not fall: {first:.3f} → {last:.3f}"
            log(f"quick: classifier loss {first:.3f} → {last:.3f}")
        previous = metrics.get("classifier", {}).get("epochs", 0) if args.init_classifier else 0
        previous_ft = metrics.get("classifier", {}).get("finetuneEpochs", 0) if args.init_classifier else 0
        metrics["classifier"] = {"testAccuracy": float(accuracy(clf, x_test, y_test)), "epochs": previous + args.classifier_epochs, "finetuneEpochs": previous_ft + (args.classifier_epochs if args.finetune else 0), "flip": args.flip or metrics.get("classifier", {}).get("flip", False)}
        export_onnx(clf, example, os.path.join(args.out, "classifier.onnx"), ["image"], ["logits"])
        export_weights({"classifier": clf}, os.path.join(args.out, "classifier-weights"))

    if "vae" not in args.skip:
        def export_vae(vae, epochs_done):
            elbo = test_elbo(vae, x_test)
            metrics["vae"] = {"testElboNats": elbo, "testBitsPerDim": -elbo / (1024 * math.log(2)), "latent": LATENT, "epochs": epochs_done, "likelihood": args.likelihood}
            if args.likelihood == "discretized-logistic":
                metrics["vae"]["minLogScale"] = MIN_LOG_SCALE
            recon = ["reconstruction_logits", "log_scale"] if args.likelihood == "discretized-logistic" else ["reconstruction_logits"]
            export_onnx(vae, example, os.path.join(args.out, "vae.onnx"), ["image"], recon + ["mu", "logvar"])
            export_onnx(vae.encoder, example, os.path.join(args.out, "vae-encoder.onnx"), ["image"], ["mu", "logvar"])
            export_onnx(vae.decoder, torch.zeros(2, LATENT), os.path.join(args.out, "vae-decoder.onnx"), ["z"], recon)
            export_weights({"encoder": vae.encoder, "decoder": vae.decoder}, os.path.join(args.out, "vae-weights"))
            write_metrics()

        # Export after every epoch: a long run can be evaluated (and stopped) part-way.
        vae, losses = train_vae(x_train, x_test, quick_epochs if args.quick else args.vae_epochs, steps, args.seed, log, args.likelihood, None if args.quick else export_vae)
        if args.quick:
            first, last = np.mean(losses[:10]), np.mean(losses[-10:])
            # A discretised-logistic loss keeps a large floor (the 8-bit noise), so it falls by a smaller fraction.
            assert last < (0.95 if args.likelihood == "discretized-logistic" else 0.8) * first, f"VAE loss did not fall: {first:.1f} → {last:.1f}"
            log(f"quick: VAE loss {first:.1f} → {last:.1f}")
        if args.quick:  # otherwise the last epoch's callback has exported it
            export_vae(vae, quick_epochs)

    write_metrics()
    log(json.dumps(metrics))


if __name__ == "__main__":
    sys.exit(main())
