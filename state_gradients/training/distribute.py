"""Data-parallel training with tf.distribute: the strategy of the `distribute` key and its replicated train step."""
# Shape letters: B batch rows (all replicas), R replicas, b = B / R rows per replica, T time
# steps, E embedding, H state.
#
#   window [B, T] --rows r*b..(r+1)*b-1--> replica r: its rows' state carried from window to window
#                                           loss of its rows / B, gradients of its rows
#                 all-reduce SUM of the gradients (sparse embedding slices are gathered, so the
#                 global norm counts the same slices as on one device) -> clip by the global norm
#                 -> the same optimizer update on every replica (mirrored variables)
#
# Every update equals the single-device update up to float32 summation order: the loss is a
# sum over rows, so the summed replica gradients are the single-device gradient. Dropout masks
# and softmax samples are drawn for the whole [B, T] window from the step's seeds, exactly as on
# one device, and each replica takes its rows of the masks (the samples are shared), so the
# updates agree with dropout on too.
import json
import os

import tensorflow as tf

from state_gradients.core.errors import UserError
from state_gradients.training import sampled_softmax

def make_strategy(config):
    """The tf.distribute strategy of config.distribute (None for `none`); refuses B not divisible by the replicas."""
    kind = config.distribute or "none"
    if kind == "none":
        return None
    if kind == "mirrored":
        # every GPU, else every logical CPU device (tf.config.set_logical_device_configuration)
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or \
                  [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
    else:
        if not os.environ.get("TF_CONFIG"):
            raise UserError(f"{config.line_of('distribute')}: distribute multi_worker needs the TF_CONFIG "
                            "environment variable (cluster and task of this worker)")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as err:
            raise UserError(f"TF_CONFIG is not valid JSON: {err}") from None
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise UserError(f"{config.line_of('batch_size')}: batch_size {config.batch_size} is not divisible by the "
                        f"{replicas} replicas of distribute {kind}")
    return strategy


def is_chief(strategy):
    """True when this process writes checkpoints: always without a cluster; the chief (or worker 0) with one."""
    if strategy is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    return resolver.task_type in (None, "chief") or (resolver.task_type == "worker" and resolver.task_id == 0
                                                      and "chief" not in resolver.cluster_spec().as_dict())


def _rows(strategy, array, rows):
    """A [B, ...] array as a per-replica value: replica r gets rows r*rows..(r+1)*rows-1."""
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: array[ctx.replica_id_in_sync_group * rows:(ctx.replica_id_in_sync_group + 1) * rows])


def zero_state(strategy, model, batch_size):
    """The per-replica zero state (b = B / R rows each)."""
    rows = batch_size // strategy.num_replicas_in_sync
    return strategy.experimental_distribute_values_from_function(lambda ctx: model.zero_state(rows))


def make_train_step(strategy, model, optimizer, generator, *, batch_size, num_steps, keep_prob, max_grad_norm,
                    emb_dropout=True, sampled=False, apply=True):
    """step(inputs [B, T], targets [B, T], per-replica state) -> (cost = summed cross entropy / B, per-replica state).

    The data-parallel twin of run_epoch.make_train_step (same loss, dropout, clipping and update).
    apply=False: no clipping and no update; the step returns (cost, the all-reduced dense
    gradients as replica 0 holds them, per-replica state), to compare with run_epoch's.
    """
    variables = model.trainable_variables
    rate = 1.0 - keep_prob
    rows = batch_size // strategy.num_replicas_in_sync

    def replica_step(inputs, targets, state, seeds):
        ctx = tf.distribute.get_replica_context()
        first = ctx.replica_id_in_sync_group * rows
        mine = slice(first, first + rows)
        with tf.GradientTape() as tape:
            x = model.embed(inputs)
            if rate > 0 and emb_dropout:
                # the single-device mask of the whole window, this replica's rows
                mask = tf.nn.experimental.stateless_dropout(tf.ones([batch_size, num_steps, model.embedding_size],
                                                                    x.dtype), rate, seed=seeds[:, 0])
                x = x * mask[mine]
            all_states = model.run_layers(x, state)
            outputs = all_states[-1][-1]
            if rate > 0:
                mask = tf.nn.experimental.stateless_dropout(tf.ones([batch_size, num_steps, model.size],
                                                                    outputs.dtype), rate, seed=seeds[:, 1])
                outputs = outputs * mask[mine]
            if sampled:
                losses = sampled_softmax.sampled_token_losses(model, outputs, targets, seeds[:, 2])
            else:
                losses = model.token_losses(outputs, targets)
            cost = tf.reduce_sum(losses) / batch_size
        grads = tape.gradient(cost, variables)
        grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        if not apply:
            return cost, [tf.convert_to_tensor(g) for g in grads], model.final_state(all_states)
        grads, _ = tf.clip_by_global_norm(grads, max_grad_norm)
        optimizer.apply(grads, variables)
        return cost, model.final_state(all_states)

    @tf.function
    def distributed_step(inputs, targets, state):
        seeds = generator.make_seeds(3)      # drawn once per step, as on one device
        out = strategy.run(replica_step, args=(inputs, targets, state, seeds))
        cost = strategy.reduce(tf.distribute.ReduceOp.SUM, out[0], axis=None)
        if not apply:
            return cost, [strategy.experimental_local_results(g)[0] for g in out[1]], out[2]
        return cost, out[1]

    def step(inputs, targets, state):
        return distributed_step(_rows(strategy, inputs, rows), _rows(strategy, targets, rows), state)

    return step
