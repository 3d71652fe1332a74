"""Mixed precision: a dtype policy says which dtype layers compute in and which they store.

``set_global_policy('mixed_bfloat16')`` makes layers created afterwards keep float32
variables (so small updates are not lost to rounding) while casting their inputs and
weights to bfloat16 in ``call``. Gradients flow back through the cast into the float32
variables, so optimizers always update float32 values.

On the CPU the native kernels store bfloat16/float16 tensors at half width but accumulate
in float32 internally, which is accurate but not faster than float32; the policy mainly
halves activation memory there. Under 'mixed_float16' ``Model.compile`` wraps the optimizer
in ``lamina.optimizers.LossScaleOptimizer`` (dynamic loss scaling, so small float16
gradients do not underflow); bfloat16 has float32's range and needs none.
Normalization layers compute their statistics in float32 whatever the policy.
"""

_FLOATS = ("float16", "bfloat16", "float32", "float64")
_MIXED = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


class Policy:
    """A dtype policy: ``Policy('mixed_bfloat16')``, ``Policy('float32')``, ...

    Args:
        name: 'float32', 'float64', 'float16', 'bfloat16', 'mixed_float16' or
            'mixed_bfloat16'.

    Attributes:
        compute_dtype: Dtype of the layer's computation (inputs and weights are cast to it).
        variable_dtype: Dtype of the layer's weights.
    """

    def __init__(self, name):
        if isinstance(name, Policy):
            name = name.name
        if name in _MIXED:
            self.compute_dtype, self.variable_dtype = _MIXED[name], "float32"
        elif name in _FLOATS:
            self.compute_dtype = self.variable_dtype = name
        else:
            known = ", ".join(_FLOATS + tuple(_MIXED))
            raise ValueError(f"Unknown dtype policy '{name}'. Known policies: {known}")
        self.name = name

    @property
    def is_mixed(self):
        return self.compute_dtype != self.variable_dtype

    def __eq__(self, other):
        return isinstance(other, Policy) and other.name == self.name

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return f'<Policy "{self.name}">'


_global_policy = Policy("float32")


def set_global_policy(policy):
    """Sets the policy of layers created from now on (a name or a Policy)."""
    global _global_policy
    _global_policy = Policy(policy)


def global_policy():
    """The policy new layers get when they are not given a dtype."""
    return _global_policy


__all__ = ["Policy", "set_global_policy", "global_policy"]
