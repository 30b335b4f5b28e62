"""regcli: an experiment runner for regularization in deep learning (Keras 3)."""

__version__ = "0.1.0"
