"""Drawing primitives every figure shares: one colour and line style per class."""
