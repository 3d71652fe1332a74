"""The Optimizer base: clipping, weight decay and schedules around a per-variable update_step.

``apply`` does the bookkeeping shared by every optimizer, then updates the variables. The
built-in optimizers update all of them in one fused native call (``_fused_update``, e.g.
``lamina.adam_step``); a subclass that overrides ``update_step(grad, var, lr)`` is called
once per variable instead, so a new optimizer is still one small method.
Updates run under ``lamina.no_grad()`` and change the variables in place.
"""

import math
import numbers

import lamina
from lamina.optimizers.schedules import LearningRateSchedule


def _key(var):
    return hash(var)  # identity of the tensor's storage object; Tensor.__eq__ is elementwise


class Optimizer:
    """Base class of the optimizers.

    Args:
        params: Optional list of tensors to optimize, for the PyTorch-style ``step()`` /
            ``zero_grad()`` loop. A number here is taken as the learning rate.
        learning_rate: A float or a LearningRateSchedule (``lr`` is an alias).
        weight_decay: Decoupled decay: each step does ``var -= lr * weight_decay * var``.
        clipnorm: Clip each gradient to this L2 norm.
        clipvalue: Clip each gradient element to [-clipvalue, clipvalue].
        global_clipnorm: Clip all gradients together to this total L2 norm.
        name: Name of the optimizer.
    """

    def __init__(self, params=None, learning_rate=0.001, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, lr=None):
        if isinstance(params, (numbers.Number, LearningRateSchedule)):
            params, learning_rate = None, params
        if lr is not None:
            learning_rate = lr
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of clipnorm, clipvalue and global_clipnorm may be set")
        self.params = list(params) if params is not None else None
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self._slots = {}

    # ----- learning rate -------------------------------------------------------------------
    @property
    def lr(self):
        """The learning rate for the next update (schedules evaluated at `iterations`)."""
        if isinstance(self.learning_rate, LearningRateSchedule) or callable(self.learning_rate):
            return float(self.learning_rate(self.iterations))
        return float(self.learning_rate)

    # ----- state ---------------------------------------------------------------------------
    def add_slot(self, var, name, init=0.0):
        """A per-variable state tensor shaped like `var` (created once, then reused)."""
        slots = self._slots.setdefault(_key(var), {})
        if name not in slots:
            slots[name] = lamina.full_like(var.detach(), init)
        return slots[name]

    def build(self, variables):
        """Hook called once per variable list; slots are created lazily by add_slot."""

    # ----- the update ----------------------------------------------------------------------
    def _clip(self, grads):
        if self.clipvalue is not None:
            grads = [lamina.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        if self.clipnorm is not None:
            grads = [g * min(1.0, self.clipnorm / (_norm(g) + 1e-12)) for g in grads]
        if self.global_clipnorm is not None:
            total = math.sqrt(sum(_norm(g) ** 2 for g in grads))
            scale = min(1.0, self.global_clipnorm / (total + 1e-12))
            grads = [g * scale for g in grads] if scale < 1.0 else grads
        return grads

    def apply(self, grads_and_vars, variables=None):
        """Updates variables in place from their gradients.

        Args:
            grads_and_vars: A list of (gradient, variable) pairs, or a list of gradients
                when `variables` is given. Pairs with a None gradient are skipped.
            variables: The variables matching a plain list of gradients.
        """
        pairs = list(zip(grads_and_vars, variables)) if variables is not None else list(grads_and_vars)
        pairs = [(g, v) for g, v in pairs if g is not None]
        if not pairs:
            return
        with lamina.no_grad():
            grads = self._clip([g.detach() for g, _ in pairs])
            lr = self.lr
            self.iterations += 1
            if self._uses_fused_update():
                self._fused_update(grads, [v for _, v in pairs], lr, self.weight_decay or 0.0)
                return
            for grad, (_, var) in zip(grads, pairs):
                if self.weight_decay:
                    var -= (lr * self.weight_decay) * var
                self.update_step(grad, var, lr)

    apply_gradients = apply

    def update_step(self, grad, var, lr):
        """Updates one variable in place (weight decay already applied).

        Override it to define a new update rule; the built-in optimizers leave it alone and
        update every variable at once in ``_fused_update``.
        """
        if type(self)._fused_update is Optimizer._fused_update:
            raise NotImplementedError(f"{type(self).__name__} must implement update_step")
        self._fused_update([grad], [var], lr, 0.0)

    def _fused_update(self, grads, variables, lr, weight_decay):
        """Updates all variables in one native call (decoupled weight decay included)."""
        raise NotImplementedError

    def _uses_fused_update(self):
        cls = type(self)
        return cls.update_step is Optimizer.update_step and cls._fused_update is not Optimizer._fused_update

    # ----- PyTorch-style loop --------------------------------------------------------------
    def step(self):
        """Applies the gradients accumulated in ``.grad`` of the params given at construction."""
        if self.params is None:
            raise ValueError(f"{type(self).__name__}.step() needs the parameter list passed to the constructor")
        self.apply([(p.grad, p) for p in self.params])

    def zero_grad(self):
        """Clears ``.grad`` of the params given at construction."""
        for p in self.params or []:
            p.grad = None

    def get_config(self):
        return {"name": self.name, "learning_rate": self.learning_rate, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm}

    def __repr__(self):
        return f"<{type(self).__name__} lr={self.lr:g} iterations={self.iterations}>"


def _norm(g):
    return math.sqrt(float(lamina.sum(g * g).item()))


def _numpy_of(t):
    return t.detach().numpy().copy()


def optimizer_state(optimizer, variables):
    """The optimizer's state for `variables` (in that order) as ``({name: array}, {name: str})``:
    slot tensors named ``"{index}/{slot}"`` and scalars (``iterations``; with loss scaling,
    the scale and its count of finite steps) as strings."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    arrays = {}
    for i, var in enumerate(variables):
        for slot, value in sorted(inner._slots.get(_key(var), {}).items()):
            arrays[f"{i}/{slot}"] = _numpy_of(value)
    scalars = {"iterations": str(int(inner.iterations))}
    if inner is not optimizer:
        scalars["loss_scale"] = repr(float(optimizer.scale))
        scalars["loss_scale_finite_steps"] = str(int(optimizer._finite_steps))
    return arrays, scalars


def set_optimizer_state(optimizer, variables, arrays, scalars):
    """Restores what ``optimizer_state`` returned onto `variables` (the same order and shapes)."""
    slots = {}
    for name, value in arrays.items():
        index, _, slot = name.partition("/")
        if not index.isdigit() or int(index) >= len(variables) or not slot:
            raise ValueError(f"optimizer state: unexpected entry '{name}' for {len(variables)} variables")
        var = variables[int(index)]
        if tuple(value.shape) != tuple(var.shape):
            raise ValueError(f"optimizer state: '{name}' has shape {tuple(value.shape)}, the variable "
                             f"{tuple(var.shape)}")
        slots.setdefault(_key(var), {})[slot] = lamina.tensor(value, dtype=var.dtype)
    iterations = _scalar(scalars, "iterations", int, "0", lambda v: v >= 0)
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if inner is not optimizer:
        optimizer.scale = _scalar(scalars, "loss_scale", float, repr(optimizer.scale),
                                  lambda v: math.isfinite(v) and v >= 1.0)
        optimizer._finite_steps = _scalar(scalars, "loss_scale_finite_steps", int, "0", lambda v: v >= 0)
    inner._slots = slots
    inner.iterations = iterations


def _scalar(scalars, name, kind, default, valid):
    text = scalars.get(name, default)
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not valid(value):
        raise ValueError(f"optimizer state: invalid {name} {text!r}")
    return value
