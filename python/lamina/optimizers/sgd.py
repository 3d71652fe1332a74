"""Stochastic gradient descent with optional (Nesterov) momentum."""

from lamina.optimizers.optimizer import Optimizer


class SGD(Optimizer):
    """SGD: ``v = momentum * v - lr * g; var += v`` (plain ``var -= lr * g`` without momentum).

    Args:
        params: Optional parameter list (PyTorch style) or the learning rate.
        learning_rate: Step size (default 0.01, as in Keras).
        momentum: Momentum factor in [0, 1).
        nesterov: Use Nesterov momentum.
        **kwargs: Optimizer arguments (weight_decay, clipnorm, ...).
    """

    def __init__(self, params=None, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(params, learning_rate, **kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum}")
        self.momentum, self.nesterov = float(momentum), nesterov

    def update_step(self, grad, var, lr):
        if not self.momentum:
            var -= lr * grad
            return
        velocity = self.add_slot(var, "momentum")
        velocity *= self.momentum
        velocity -= lr * grad
        if self.nesterov:
            var += self.momentum * velocity - lr * grad
        else:
            var += velocity

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
