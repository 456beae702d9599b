"""The version of state-gradients (setup.py reads it from here)."""
__version__ = "0.1.0"
