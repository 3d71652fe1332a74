"""Dynamic loss scaling for float16 training (Keras' LossScaleOptimizer)."""

import math

import lamina
from lamina.optimizers.optimizer import Optimizer


class LossScaleOptimizer(Optimizer):
    """Wraps an optimizer with dynamic loss scaling, for the 'mixed_float16' policy.

    Gradients of a float16 computation underflow to zero below ~6e-8. The loss is multiplied
    by ``scale`` before backpropagation (``scale_loss``, which ``Model.fit`` calls), and
    ``apply`` divides the gradients by it again before the inner optimizer sees them. When
    any gradient is inf or NaN (the scaled values overflowed float16) the step is skipped
    and the scale halved; after ``dynamic_growth_steps`` finite steps in a row it doubles.
    ``Model.compile`` wraps the optimizer in one when the model computes in float16.

    Args:
        inner_optimizer: The optimizer that updates the variables.
        initial_scale: Starting loss scale (a power of two keeps the scaling exact).
        dynamic_growth_steps: Finite steps after which the scale doubles.
        name: Name of the optimizer.
    """

    def __init__(self, inner_optimizer, initial_scale=2.0**15, dynamic_growth_steps=2000, name=None):
        if not isinstance(inner_optimizer, Optimizer) or isinstance(inner_optimizer, LossScaleOptimizer):
            raise TypeError("LossScaleOptimizer: inner_optimizer must be an Optimizer (not already loss-scaled), "
                            f"got {type(inner_optimizer).__name__}")
        if not (isinstance(initial_scale, (int, float)) and math.isfinite(initial_scale) and initial_scale >= 1):
            raise ValueError(f"LossScaleOptimizer: initial_scale must be a finite number >= 1, got {initial_scale!r}")
        if not isinstance(dynamic_growth_steps, int) or dynamic_growth_steps < 1:
            raise ValueError("LossScaleOptimizer: dynamic_growth_steps must be a positive int, "
                             f"got {dynamic_growth_steps!r}")
        super().__init__(inner_optimizer.params, learning_rate=inner_optimizer.learning_rate,
                         name=name or "loss_scale_optimizer")
        self.inner_optimizer = inner_optimizer
        self.scale = float(initial_scale)
        self.dynamic_growth_steps = dynamic_growth_steps
        self._finite_steps = 0

    @property
    def lr(self):
        return self.inner_optimizer.lr

    def scale_loss(self, loss):
        """The loss to backpropagate: ``loss * scale``."""
        return loss * self.scale

    def apply(self, grads_and_vars, variables=None):
        """Unscales the gradients and updates, or skips the step when one is not finite."""
        pairs = list(zip(grads_and_vars, variables)) if variables is not None else list(grads_and_vars)
        pairs = [(g, v) for g, v in pairs if g is not None]
        if not pairs:
            return
        with lamina.no_grad():
            unscaled = [(g.detach() * (1.0 / self.scale), v) for g, v in pairs]
            # g * 0 is NaN exactly where g is inf or NaN, and 0 elsewhere: no overflow.
            finite = all(math.isfinite(float(lamina.sum(g * 0.0).item())) for g, _ in unscaled)
        if not finite:
            self.scale = max(self.scale / 2.0, 1.0)
            self._finite_steps = 0
            return
        self.inner_optimizer.apply(unscaled)
        self.iterations += 1
        self._finite_steps += 1
        if self._finite_steps >= self.dynamic_growth_steps:
            self.scale *= 2.0
            self._finite_steps = 0

    apply_gradients = apply

    def get_config(self):
        """The wrapper's own settings (saving stores the inner optimizer next to them)."""
        return {"name": self.name, "initial_scale": self.scale, "dynamic_growth_steps": self.dynamic_growth_steps}

    def __repr__(self):
        return f"<LossScaleOptimizer scale={self.scale:g} inner={self.inner_optimizer!r}>"
