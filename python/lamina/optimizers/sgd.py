"""Stochastic gradient descent with optional (Nesterov) momentum."""

import lamina
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

    def _fused_update(self, grads, variables, lr, weight_decay):
        bufs = [self.add_slot(v, "momentum") for v in variables] if self.momentum else None
        lamina.sgd_step(variables, grads, bufs, lr=lr, momentum=self.momentum, nesterov=self.nesterov,
                        weight_decay=weight_decay)
