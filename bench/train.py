"""End-to-end training throughput (samples/s): lamina (tensor API, fused ops, Adam) vs
PyTorch CPU (same model, same optimizer, same thread count) on synthetic data.

Models: MLP 784-512-256-10 (batch 128); CNN conv32-pool-conv64-pool-dense128-dense10 on
1x28x28 (batch 64); LSTM classifier (embedding 10k x 128, LSTM 256, seq 128, batch 64);
2-layer post-norm transformer encoder (d 128, 4 heads, ff 512, seq 128, batch 32).
Each step: forward, cross-entropy, backward, Adam update. A few warm-up steps, then the
median of timed steps, the frameworks timed in alternating rounds. Column `lamina / torch` above 1:
lamina is faster.
Run: PYTHONPATH=python python bench/train.py [--steps N] [--only transformer,mlp]
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

import lamina as lm
from harness import optional_torch, wait_out_workers

RNG = np.random.default_rng(0)


def glorot(*shape):
    fan_in, fan_out = (shape[1], shape[0]) if len(shape) == 2 else (np.prod(shape[1:]), shape[0] * np.prod(shape[2:]))
    lim = np.sqrt(6.0 / (fan_in + fan_out))
    return RNG.uniform(-lim, lim, size=shape).astype(np.float32)


# ----------------------------------------------------------------------------- lamina models
def lm_params(*arrays):
    return [lm.tensor(a, requires_grad=True) for a in arrays]


def dense(x, w, b, activation="linear"):
    return lm.linear(x, w, b, activation)  # weights stored (in, out); what the Dense layer runs


def lm_mlp():
    p = lm_params(glorot(784, 512), np.zeros(512, np.float32), glorot(512, 256), np.zeros(256, np.float32),
                  glorot(256, 10), np.zeros(10, np.float32))

    def forward(x):
        h = dense(x, p[0], p[1], "relu")
        h = dense(h, p[2], p[3], "relu")
        return dense(h, p[4], p[5])
    return p, forward


def lm_cnn():
    p = lm_params(glorot(32, 1, 3, 3), np.zeros(32, np.float32), glorot(64, 32, 3, 3), np.zeros(64, np.float32),
                  glorot(64 * 7 * 7, 128), np.zeros(128, np.float32), glorot(128, 10), np.zeros(10, np.float32))

    def forward(x):
        h = lm.max_pool2d(lm.relu(lm.conv2d(x, p[0], p[1], padding=1)), 2)
        h = lm.max_pool2d(lm.relu(lm.conv2d(h, p[2], p[3], padding=1)), 2)
        h = lm.reshape(h, (h.shape[0], -1))
        return dense(dense(h, p[4], p[5], "relu"), p[6], p[7])
    return p, forward


def lm_lstm():
    H = 256
    p = lm_params(RNG.standard_normal((10000, 128)).astype(np.float32) * 0.1, glorot(4 * H, 128),
                  glorot(4 * H, H), np.zeros(4 * H, np.float32), glorot(H, 10), np.zeros(10, np.float32))

    def forward(tokens):
        x = lm.take(p[0], tokens, 0)
        _, h, _ = lm.lstm(x, None, None, p[1], p[2], p[3])
        return dense(h, p[4], p[5])
    return p, forward


def lm_transformer():
    d, heads, ff = 128, 4, 512
    p = []
    for _ in range(2):
        p += lm_params(glorot(d, 3 * d), np.zeros(3 * d, np.float32), glorot(d, d), np.zeros(d, np.float32),
                       np.ones(d, np.float32), np.zeros(d, np.float32), glorot(d, ff), np.zeros(ff, np.float32),
                       glorot(ff, d), np.zeros(d, np.float32), np.ones(d, np.float32), np.zeros(d, np.float32))
    p += lm_params(glorot(d, 10), np.zeros(10, np.float32))

    def forward(x):
        b, s, _ = x.shape
        for layer in range(2):
            wqkv, bqkv, wo, bo, g1, b1, w1, c1, w2, c2, g2, b2 = p[12 * layer:12 * layer + 12]
            qkv = lm.reshape(dense(x, wqkv, bqkv), (b, s, 3, heads, d // heads))
            qkv = lm.permute(qkv, (2, 0, 3, 1, 4))
            a = lm.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
            a = lm.reshape(lm.permute(a, (0, 2, 1, 3)), (b, s, d))
            x = lm.layer_norm(x + dense(a, wo, bo), g1, b1)
            x = lm.layer_norm(x + dense(lm.gelu(dense(x, w1, c1)), w2, c2), g2, b2)
        return dense(lm.mean(x, 1), p[-2], p[-1])
    return p, forward


# ----------------------------------------------------------------------------- torch models
def torch_models(torch):
    nn = torch.nn

    class LSTMClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.lstm, self.out = nn.Embedding(10000, 128), nn.LSTM(128, 256, batch_first=True), nn.Linear(256, 10)

        def forward(self, tokens):
            _, (h, _) = self.lstm(self.emb(tokens))
            return self.out(h[0])

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            layer = nn.TransformerEncoderLayer(128, 4, 512, dropout=0.0, activation="gelu", batch_first=True)
            self.enc, self.out = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False), nn.Linear(128, 10)

        def forward(self, x):
            return self.out(self.enc(x).mean(1))

    return {
        "mlp": lambda: nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10)),
        "cnn": lambda: nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                     nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                     nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10)),
        "lstm": LSTMClassifier,
        "transformer": Encoder,
    }


# ----------------------------------------------------------------------------- cases
# (name, lamina builder, batch, input maker, warm-up steps, timed steps)
CASES = [
    ("mlp", lm_mlp, 128, lambda n: RNG.standard_normal((n, 784)).astype(np.float32), 3, 20),
    ("cnn", lm_cnn, 64, lambda n: RNG.standard_normal((n, 1, 28, 28)).astype(np.float32), 2, 10),
    ("lstm", lm_lstm, 64, lambda n: RNG.integers(0, 10000, size=(n, 128)), 1, 4),
    ("transformer", lm_transformer, 32, lambda n: RNG.standard_normal((n, 128, 128)).astype(np.float32), 2, 8),
]


def median_steps(steps_by_name, warmup, steps, rounds=4):
    """Median seconds per training step of each framework, timed in rounds (some steps of each,
    then the next round), so that a drift in the shared machine's speed (20% within a minute
    at times) weighs on both alike; each framework's share of a round starts with untimed
    steps while the previous one's idle workers may still spin (harness.SPIN_TAIL_SECONDS)."""
    for step in steps_by_name.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in steps_by_name}
    previous = list(steps_by_name)[-1]  # its warm-up ran last
    for _ in range(rounds):
        for name, step in steps_by_name.items():
            if previous != name:
                wait_out_workers(previous, step)
            for _ in range(-(-steps // rounds)):
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
            previous = name
    return {name: statistics.median(t) for name, t in times.items()}


def main():
    scale = 1.0
    if "--steps" in sys.argv:
        scale = float(sys.argv[sys.argv.index("--steps") + 1]) / 10
    torch = optional_torch()
    threads = lm.get_num_threads()
    if torch is not None:
        torch.set_num_threads(threads)
        tmodels = torch_models(torch)
    print(f"threads={threads}; samples/s (median step), Adam lr 1e-3, synthetic data")
    print(f"{'model':<14}{'batch':>6}{'lamina':>14}{'torch':>14}{'lamina / torch':>16}")
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
    for name, build, batch, make_x, warmup, steps in CASES:
        if only is not None and name not in only:
            continue
        steps = max(2, int(steps * scale))
        x_np, y_np = make_x(batch), RNG.integers(0, 10, size=batch)
        params, forward = build()
        opt = lm.optimizers.Adam(params, learning_rate=1e-3)
        x, y = lm.tensor(x_np), lm.tensor(y_np)

        def lm_step():
            loss = lm.softmax_cross_entropy(forward(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        step_fns = {"lamina": lm_step}
        if torch is not None:
            model = tmodels[name]()
            topt = torch.optim.Adam(model.parameters(), lr=1e-3)
            tx, ty = torch.from_numpy(x_np), torch.from_numpy(y_np)

            def t_step():
                loss = torch.nn.functional.cross_entropy(model(tx), ty)
                topt.zero_grad()
                loss.backward()
                topt.step()

            step_fns["torch"] = t_step
        seconds = median_steps(step_fns, warmup, steps)
        lm_rate = batch / seconds["lamina"]
        t_rate = batch / seconds["torch"] if "torch" in seconds else None
        ratio = "-" if t_rate is None else f"{lm_rate / t_rate:.2f}x"
        print(f"{name:<14}{batch:>6}{lm_rate:>14.0f}{'-' if t_rate is None else f'{t_rate:.0f}':>14}{ratio:>16}",
              flush=True)


if __name__ == "__main__":
    main()
