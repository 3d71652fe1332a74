"""Seeding of the global counter-based generator (same stream on every run for a seed)."""

from lamina import _core


def seed(n: int) -> None:
    """Resets the global generator: the same seed gives the same draws on every run."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"seed must be a non-negative int, got {n!r}")
    _core._seed(n % (1 << 64))


def get_state() -> tuple:
    """The generator state (seed, counter) for checkpoints."""
    return _core._get_rng_state()


def set_state(state: tuple) -> None:
    """Restores a state returned by get_state()."""
    seed_value, offset = state
    _core._set_rng_state(int(seed_value), int(offset))
