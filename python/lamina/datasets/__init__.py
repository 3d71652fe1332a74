"""Datasets read from local files (no downloads)."""

from lamina.datasets import mnist

__all__ = ["mnist"]
