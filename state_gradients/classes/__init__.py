"""Word classes: POS mappings, tagged corpora, the tagger, frequency bins, classes in context, the embedding classifier."""
