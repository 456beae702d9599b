"""Run main.py, or one data-parallel comparison, in a fresh process with N logical CPU devices (a helper of
test_distribute, not a test module).

    distribute_worker.py N main.py-arguments...       main.py with N logical CPUs
    distribute_worker.py N --compare CONFIG OUT.npz [float64]
                                                      S = max_max_epoch training windows, on one device and
                                                      mirrored over the N devices, side by side (below)
"""
# Shape letters: B batch rows, T time steps, S compared steps.
#
# --compare writes, for step k = 0..S-1 of the config's optimizer (the training step's code,
# clipping included): single_grad/k/NAME and mirrored_grad/k/NAME, the gradients each path is
# about to clip and apply at its own current weights (the step with apply=False, drawing the same
# seeds); abs_sum/k/NAME, the sum over the B*T tokens of |the token's own gradient| at the
# single-device weights (what the float32 rounding bound of the sums scales with); and
# single/NAME, mirrored/NAME, the weights after the S steps; initial/NAME, the weights before.
import sys

import numpy as np
import tensorflow as tf


def _generator(config):
    from state_gradients.training import trainer

    return trainer.make_generator(config)


def _numpy(grads, variables):
    return {v.name: tf.convert_to_tensor(g).numpy().astype(np.float64) for g, v in zip(grads, variables)}


def _token_abs_sum(model, options):
    """f(inputs, targets, state, seeds) -> sum over tokens i of |gradient of token i's loss / B| (numpy, per variable),
    each from run_epoch.window_gradients with only token i's loss kept (same dropout masks as the step)."""
    from state_gradients.training import run_epoch

    variables = model.trainable_variables

    @tf.function
    def one_token(i, inputs, targets, state, seeds):
        keep = tf.reshape(tf.one_hot(i, tf.size(inputs), dtype=model.dtype), tf.shape(inputs))
        losses = lambda outputs, targets: model.token_losses(outputs, targets) * keep  # noqa: E731
        _, grads, _ = run_epoch.window_gradients(model, variables, inputs, targets, state, seeds, full_losses=losses,
                                                 **options)
        return [tf.convert_to_tensor(g) for g in grads]

    def total(inputs, targets, state, seeds):
        sums = [0.0] * len(variables)
        for i in range(inputs.size):
            sums = [s + np.abs(g.numpy().astype(np.float64)) for s, g in
                    zip(sums, one_token(tf.constant(i), inputs, targets, state, seeds))]
        return {v.name: s for v, s in zip(variables, sums)}

    return total


def compare(config_path, out, dtype="float32"):
    from state_gradients.core import configuration, lm_data
    from state_gradients.models.lm import model_class
    from state_gradients.training import distribute, optimizers, run_epoch
    from state_gradients.training.trainer import epoch_learning_rate

    config = configuration.load_config(config_path, train=True, valid=True, test=False)
    corpus = lm_data.load_corpus(config, need_valid=False, need_test=False)
    inputs, targets = lm_data.make_windows(corpus.train, config.batch_size, config.num_steps)
    strategy = distribute.make_strategy(config)
    single = model_class(config.basic_cell).from_config(config, corpus.vocab_size, dtype)
    with strategy.scope():
        mirrored = model_class(config.basic_cell).from_config(config, corpus.vocab_size, dtype)
        m_optimizer = optimizers.Optimizer(config.optimizer, mirrored.trainable_variables, epoch_learning_rate(config, 0))
    s_optimizer = optimizers.Optimizer(config.optimizer, single.trainable_variables, epoch_learning_rate(config, 0))
    options = dict(batch_size=config.batch_size, num_steps=config.num_steps, keep_prob=config.dropout,
                   max_grad_norm=config.max_grad_norm, emb_dropout=not config.no_emb_dropout,
                   sampled=config.softmax == "sampled")
    token_options = {k: options[k] for k in ("batch_size", "keep_prob", "emb_dropout", "sampled")}
    s_grads = run_epoch.make_train_step(single, None, _generator(config), apply=False, **options)
    s_train = run_epoch.make_train_step(single, s_optimizer, _generator(config), **options)
    m_grads = distribute.make_train_step(strategy, mirrored, None, _generator(config), apply=False, **options)
    m_train = distribute.make_train_step(strategy, mirrored, m_optimizer, _generator(config), **options)
    seeds = _generator(config)                       # the same seeds again, for the per-token sums
    token_abs_sum = _token_abs_sum(single, token_options)
    arrays = {f"initial/{v.name}": v.numpy() for v in single.trainable_variables}
    k = 0
    for epoch in range(config.max_max_epoch):
        s_optimizer.lr.assign(epoch_learning_rate(config, epoch))
        m_optimizer.lr.assign(epoch_learning_rate(config, epoch))
        s_state = single.zero_state(config.batch_size)
        m_state = distribute.zero_state(strategy, mirrored, config.batch_size)
        for x, y in zip(inputs, targets):
            for name, value in token_abs_sum(x, y, s_state, seeds.make_seeds(3)).items():
                arrays[f"abs_sum/{k}/{name}"] = value
            _, grads, _ = s_grads(x, y, s_state)
            arrays.update({f"single_grad/{k}/{n}": g for n, g in _numpy(grads, single.trainable_variables).items()})
            _, grads, _ = m_grads(x, y, m_state)
            arrays.update({f"mirrored_grad/{k}/{n}": g for n, g in _numpy(grads, mirrored.trainable_variables).items()})
            _, s_state = s_train(x, y, s_state)
            _, m_state = m_train(x, y, m_state)
            arrays.update({f"single_after/{k}/{v.name}": v.numpy() for v in single.trainable_variables})
            k += 1
    arrays.update({f"single/{v.name}": v.numpy() for v in single.trainable_variables})
    arrays.update({f"mirrored/{v.name}": v.numpy() for v in mirrored.trainable_variables})
    np.savez(out, **arrays)
    return 0


if __name__ == "__main__":
    devices, argv = int(sys.argv[1]), sys.argv[2:]
    if devices > 1:   # logical devices can only be configured before TensorFlow starts working
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    if argv[:1] == ["--compare"]:
        sys.exit(compare(*argv[1:]))
    from tf_scripts.main import main

    sys.exit(main(argv))
