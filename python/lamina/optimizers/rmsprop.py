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

    def update_step(self, grad, var, lr):
        avg_sq = self.add_slot(var, "velocity")
        avg_sq *= self.rho
        avg_sq += (1.0 - self.rho) * (grad * grad)
        denominator = avg_sq
        if self.centered:
            avg = self.add_slot(var, "average_gradient")
            avg *= self.rho
            avg += (1.0 - self.rho) * grad
            denominator = avg_sq - avg * avg
        increment = lr * grad / lamina.sqrt(denominator + self.epsilon)
        if self.momentum:
            buf = self.add_slot(var, "momentum")
            buf *= self.momentum
            buf += increment
            var -= buf
        else:
            var -= increment


class Adagrad(Optimizer):
    """Scales each coordinate by the root of its accumulated squared gradients."""

    def __init__(self, params=None, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(params, learning_rate, **kwargs)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

    def update_step(self, grad, var, lr):
        acc = self.add_slot(var, "accumulator", self.initial_accumulator_value)
        acc += grad * grad
        var -= lr * grad / lamina.sqrt(acc + self.epsilon)
