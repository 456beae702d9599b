"""The language models: recurrent cells and the LM, the Transformer, their weights, and float64 numpy twins."""
