"""Word classes from tagged corpora."""
