"""Quickstart: fit a line with the tensor API and autograd, then check the fit.

Run: python examples/quickstart.py
"""

import lamina


def main() -> None:
    lamina.random.seed(0)
    x = lamina.randn(256, 1)
    y = 3.0 * x - 2.0 + 0.01 * lamina.randn(256, 1)
    w = lamina.zeros((1, 1), requires_grad=True)
    b = lamina.zeros((1,), requires_grad=True)
    for step in range(200):
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        with lamina.no_grad():
            w -= 0.1 * w.grad
            b -= 0.1 * b.grad
        w.grad, b.grad = None, None
        if step % 50 == 0:
            print(f"step {step:3d}  loss {loss.item():.5f}")
    print(f"learned w = {w.item():.3f} (true 3), b = {b.item():.3f} (true -2)")
    assert abs(w.item() - 3.0) < 0.05 and abs(b.item() + 2.0) < 0.05, "quickstart did not converge"


if __name__ == "__main__":
    main()
