"""What is on disk: a saved model's files, and a gradient pass's dumps, averages, blocks and shards."""
