"""TF1's GradientDescent, Adam and Adagrad updates written out as one tf.Module (their slots are checkpointed)."""
import tensorflow as tf

from state_gradients.core.errors import UserError

ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON = 0.9, 0.999, 1e-8   # TF1 AdamOptimizer defaults
ADAGRAD_INITIAL = 0.1                                        # TF1 AdagradOptimizer default


class Optimizer(tf.Module):
    """TF1's GradientDescent, Adam and Adagrad updates, written out (slots are checkpointed).

    Adam: lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t); m += (g - m)(1 - beta1);
    v += (g^2 - v)(1 - beta2); var -= lr_t * m / (sqrt(v) + epsilon), the beta powers kept as
    float32 variables multiplied once per step. Adagrad: acc += g^2; var -= lr * g / sqrt(acc),
    no epsilon. Sparse (IndexedSlices) gradients of the embedding give the same result as the
    dense gradient in all three, as TF1's duplicate-summing sparse updates did.
    """

    KINDS = ("sgd", "adam", "adagrad")

    def __init__(self, kind, variables, learning_rate):
        super().__init__(name="optimizer")
        if kind not in self.KINDS:
            raise UserError(f"optimizer must be one of {', '.join(self.KINDS)}, got {kind!r}")
        self.kind = kind
        self.lr = tf.Variable(float(learning_rate), dtype=tf.float32, trainable=False, name="learning_rate")

        def slots(fill):
            return [tf.Variable(tf.fill(v.shape, tf.constant(fill, v.dtype)), trainable=False) for v in variables]

        if kind == "adam":
            self.m, self.v = slots(0.0), slots(0.0)
            self.beta1_power = tf.Variable(ADAM_BETA1, dtype=tf.float32, trainable=False)
            self.beta2_power = tf.Variable(ADAM_BETA2, dtype=tf.float32, trainable=False)
        elif kind == "adagrad":
            self.accumulators = slots(ADAGRAD_INITIAL)

    def apply(self, grads, variables):
        """One update of `variables` with (already clipped) `grads`; usable inside tf.function."""
        if self.kind == "sgd":
            for g, var in zip(grads, variables):
                lr = tf.cast(self.lr, var.dtype)
                if isinstance(g, tf.IndexedSlices):
                    var.scatter_sub(tf.IndexedSlices(g.values * lr, g.indices, g.dense_shape))
                else:
                    var.assign_sub(lr * g)
        elif self.kind == "adam":
            alpha = self.lr * tf.sqrt(1.0 - self.beta2_power) / (1.0 - self.beta1_power)
            for g, var, m, v in zip(grads, variables, self.m, self.v):
                g = tf.convert_to_tensor(g)
                m.assign_add((g - m) * (1.0 - ADAM_BETA1))
                v.assign_add((g * g - v) * (1.0 - ADAM_BETA2))
                var.assign_sub(m * tf.cast(alpha, var.dtype) / (tf.sqrt(v) + ADAM_EPSILON))
            self.beta1_power.assign(self.beta1_power * ADAM_BETA1)
            self.beta2_power.assign(self.beta2_power * ADAM_BETA2)
        else:
            for g, var, acc in zip(grads, variables, self.accumulators):
                g = tf.convert_to_tensor(g)
                acc.assign_add(g * g)
                var.assign_sub(tf.cast(self.lr, var.dtype) * g * tf.math.rsqrt(acc))
