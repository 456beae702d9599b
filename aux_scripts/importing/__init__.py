"""Importing PyTorch, Keras and TF1 RNN language models: their files, the sources found in them, the conversion."""
