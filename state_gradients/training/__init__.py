"""Training and evaluation: compiled steps, optimizers, sampled softmax, tf.distribute, the trainer."""
