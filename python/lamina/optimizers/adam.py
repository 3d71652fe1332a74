"""Adam and AdamW."""

import lamina
from lamina.optimizers.optimizer import Optimizer


class Adam(Optimizer):
    """Adam: adaptive moment estimation (Kingma & Ba), in Keras's epsilon-hat form.

    Args:
        params: Optional parameter list (PyTorch style) or the learning rate.
        learning_rate: Step size.
        beta_1: Decay of the first-moment average.
        beta_2: Decay of the second-moment average.
        epsilon: Added to the denominator.
        amsgrad: Use the running maximum of the second moment.
        **kwargs: Optimizer arguments (weight_decay, clipnorm, ...).
    """

    def __init__(self, params=None, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 **kwargs):
        super().__init__(params, learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, amsgrad

    def _fused_update(self, grads, variables, lr, weight_decay):
        m = [self.add_slot(v, "m") for v in variables]
        v = [self.add_slot(x, "v") for x in variables]
        v_max = [self.add_slot(x, "v_max") for x in variables] if self.amsgrad else None
        lamina.adam_step(variables, grads, m, v, self.iterations, lr=lr, beta1=self.beta_1, beta2=self.beta_2,
                         eps=self.epsilon, weight_decay=weight_decay, v_max=v_max)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.004, as in Keras)."""

    def __init__(self, params=None, learning_rate=0.001, weight_decay=0.004, **kwargs):
        super().__init__(params, learning_rate, weight_decay=weight_decay, **kwargs)
