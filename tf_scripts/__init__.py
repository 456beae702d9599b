"""state-gradients: TensorFlow 2 port of the RNN LM toolkit and its state-gradient analysis."""
