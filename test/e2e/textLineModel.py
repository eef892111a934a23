"""
A text-line orientation classifier of the kind issue 25 tried as a newcomer: ONNX input `x` [?, 3, ?, ?]
(height and width left free), trained on 48 high x 192 wide RGB lines, softmax over two classes
("0°" upright, "180°" upside down). Lines are synthetic: dark word-like blocks whose letters rise from a
baseline (ascenders up, a few descenders down), so an upside-down line is told by where the ink sits.

    /usr/bin/python3 test/e2e/textLineModel.py OUT_DIR IN_COUNT FEW_COUNT

writes OUT_DIR/text-lines.onnx, OUT_DIR/lines/line-NNNN.png (IN_COUNT upright and upside-down lines, 192x48),
OUT_DIR/lines-few/ (FEW_COUNT lines: too few to calibrate on). Deterministic (seeded), about 10 s on 2 cores.
"""
import os
import sys

import numpy as np
import torch
from PIL import Image

W, H = 192, 48


def line(rng: np.random.Generator) -> np.ndarray:
    paper = rng.integers(215, 250)
    img = np.full((H, W, 3), paper, dtype=np.uint8)
    img = (img.astype(np.int16) + rng.integers(-8, 8, size=(1, 1, 3))).clip(0, 255).astype(np.uint8)
    ink = rng.integers(10, 70, size=3)
    base = rng.integers(30, 36)
    x = rng.integers(4, 14)
    while x < W - 10:
        for _ in range(rng.integers(2, 8)):  # a word
            w = rng.integers(3, 7)
            if x + w >= W - 4:
                break
            top = base - rng.integers(8, 12) - (rng.integers(6, 10) if rng.random() < 0.35 else 0)
            bottom = base + (rng.integers(5, 9) if rng.random() < 0.15 else 0)
            img[top:bottom, x : x + w] = ink
            x += w + rng.integers(1, 3)
        x += rng.integers(5, 12)
    return img


def main() -> None:
    out, n_in, n_few = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(25)
    torch.manual_seed(25)
    for folder, count in (("lines", n_in), ("lines-few", n_few)):
        os.makedirs(os.path.join(out, folder), exist_ok=True)
        for i in range(count):
            img = line(rng)
            if i % 2:
                img = img[::-1, ::-1]
            Image.fromarray(np.ascontiguousarray(img)).save(os.path.join(out, folder, f"line-{i:04d}.png"))

    # Training data of its own (not the fixture's images): upright = 0, upside down = 1.
    xs, ys = [], []
    for i in range(600):
        img = line(rng)
        flip = i % 2
        if flip:
            img = img[::-1, ::-1]
        xs.append(np.ascontiguousarray(img).transpose(2, 0, 1) / 255.0)
        ys.append(flip)
    x = torch.tensor(np.stack(xs), dtype=torch.float32)
    x = (x - 0.5) / 0.5  # the model card's (x/255 - 0.5)/0.5
    y = torch.tensor(ys)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = torch.nn.Sequential(
                torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
            )
            self.head = torch.nn.Linear(16 * 2, 2)

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            f = self.features(t)
            # Where the ink sits: the mean over the upper and the lower half (any height and width).
            h = f.shape[2] // 2
            pooled = torch.cat([f[:, :, :h].mean(dim=(2, 3)), f[:, :, h:].mean(dim=(2, 3))], dim=1)
            return torch.softmax(self.head(pooled), dim=1)

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for epoch in range(6):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 50):
            idx = perm[i : i + 50]
            opt.zero_grad()
            loss = torch.nn.functional.nll_loss(torch.log(net(x[idx]) + 1e-9), y[idx])
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(x).argmax(1) == y).float().mean().item()
    print(f"text-line classifier: training accuracy {acc:.3f}")
    torch.onnx.export(
        net, x[:1], os.path.join(out, "text-lines.onnx"), input_names=["x"], output_names=["probabilities"],
        dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"}, "probabilities": {0: "batch"}}, opset_version=13,
    )


if __name__ == "__main__":
    main()
