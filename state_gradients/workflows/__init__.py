"""Multi-step jobs: sg-reproduce, the demo, seeds, comparisons of models, sharded passes."""
