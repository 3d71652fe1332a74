"""Learning-rate schedules: ``schedule(step) -> learning rate`` (step counts optimizer updates)."""

import math


class LearningRateSchedule:
    """Base class; subclasses implement ``__call__(step)``."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        return dict(self.__dict__)

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class ExponentialDecay(LearningRateSchedule):
    """initial * decay_rate ** (step / decay_steps), floored to whole periods if `staircase`."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        if decay_steps <= 0:
            raise ValueError(f"ExponentialDecay: decay_steps must be positive, got {decay_steps}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps, self.decay_rate, self.staircase = decay_steps, float(decay_rate), staircase

    def __call__(self, step):
        p = step / self.decay_steps
        return self.initial_learning_rate * self.decay_rate ** (math.floor(p) if self.staircase else p)


class CosineDecay(LearningRateSchedule):
    """Optional linear warmup to `warmup_target`, then cosine decay to alpha * peak.

    Args:
        initial_learning_rate: Rate at step 0 (the peak when there is no warmup).
        decay_steps: Steps of cosine decay (after the warmup).
        alpha: Final rate as a fraction of the peak.
        warmup_target: Peak rate reached after `warmup_steps` (None: no warmup).
        warmup_steps: Length of the linear warmup.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
        if decay_steps <= 0:
            raise ValueError(f"CosineDecay: decay_steps must be positive, got {decay_steps}")
        self.initial_learning_rate, self.decay_steps, self.alpha = float(initial_learning_rate), decay_steps, alpha
        self.warmup_target, self.warmup_steps = warmup_target, warmup_steps

    def __call__(self, step):
        peak = self.initial_learning_rate if self.warmup_target is None else self.warmup_target
        if step < self.warmup_steps:
            return self.initial_learning_rate + (peak - self.initial_learning_rate) * step / self.warmup_steps
        progress = min(step - self.warmup_steps, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return peak * ((1.0 - self.alpha) * cosine + self.alpha)


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[i] while step <= boundaries[i] (and values[-1] after the last boundary)."""

    def __init__(self, boundaries, values):
        if len(values) != len(boundaries) + 1:
            raise ValueError("PiecewiseConstantDecay: values needs exactly one more entry than boundaries")
        self.boundaries, self.values = list(boundaries), [float(v) for v in values]

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]


class StepDecay(LearningRateSchedule):
    """initial * gamma ** (step // step_size) (PyTorch's StepLR, counted in updates)."""

    def __init__(self, initial_learning_rate, step_size, gamma=0.1):
        if step_size <= 0:
            raise ValueError(f"StepDecay: step_size must be positive, got {step_size}")
        self.initial_learning_rate, self.step_size, self.gamma = float(initial_learning_rate), step_size, gamma

    def __call__(self, step):
        return self.initial_learning_rate * self.gamma ** (step // self.step_size)


class LinearWarmup(LearningRateSchedule):
    """Ramps linearly from 0 to `after(warmup_steps)`, then follows `after`.

    Args:
        after: A schedule or a constant rate used once the warmup ends.
        warmup_steps: Length of the ramp.
    """

    def __init__(self, after, warmup_steps):
        self.after, self.warmup_steps = after, int(warmup_steps)

    def _after(self, step):
        return self.after(step) if callable(self.after) else float(self.after)

    def __call__(self, step):
        if step < self.warmup_steps:
            return self._after(self.warmup_steps) * (step + 1) / self.warmup_steps
        return self._after(step)
