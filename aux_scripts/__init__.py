"""Standalone analysis command lines for state-gradient dumps and embeddings."""
