"""RMSprop and Adagrad."""

import lamina
from lamina.optimizers.optimizer import Optimizer


class RMSprop(Optimizer):
    """Divides the step by a running root-mean-square of recent gradients.

    Args:
        params: Optional parameter list (PyTorch style) or the learning rate.
        learning_rate: Step size.
        rho: Decay of the squared-gradient average.
        momentum: Optional momentum.
        epsilon: Added to the denominator.
        centered: Normalise by the gradient's variance instead of its second moment.
        **kwargs: Optimizer arguments.
    """

    def __init__(self, params=None, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 **kwargs):
        super().__init__(params, learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered

    def _fused_update(self, grads, variables, lr, weight_decay):
        avg_sq = [self.add_slot(v, "velocity") for v in variables]
        avg_grads = [self.add_slot(v, "average_gradient") for v in variables] if self.centered else None
        bufs = [self.add_slot(v, "momentum") for v in variables] if self.momentum else None
        lamina.rmsprop_step(variables, grads, avg_sq, avg_grads, bufs, lr=lr, rho=self.rho, momentum=self.momentum,
                            eps=self.epsilon, weight_decay=weight_decay)


class Adagrad(Optimizer):
    """Scales each coordinate by the root of its accumulated squared gradients."""

    def __init__(self, params=None, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(params, learning_rate, **kwargs)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

    def _fused_update(self, grads, variables, lr, weight_decay):
        acc = [self.add_slot(v, "accumulator", self.initial_accumulator_value) for v in variables]
        lamina.adagrad_step(variables, grads, acc, lr=lr, eps=self.epsilon, weight_decay=weight_decay)
