"""What every layer shares, TensorFlow-free: errors, files, the command-line frame, config keys, result files, the data and class formats, the LM text."""
