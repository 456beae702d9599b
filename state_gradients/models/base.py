"""What every language-model family shares (the recurrent LM and the Transformer import it; it imports neither)."""

NO_OUTPUT_LAYER = ("the model has no output layer (imported with --no-head; output_layer False): it gives "
                   "states and state gradients but no perplexity; run with --notest and grad_interm")
