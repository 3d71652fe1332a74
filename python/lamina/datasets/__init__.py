"""Datasets read from local files (no downloads)."""

from lamina.datasets import digits, fashion_mnist, mnist

__all__ = ["mnist", "fashion_mnist", "digits"]
