"""The epoch loop: learning-rate schedule, the trainer table (fixed epochs, early stopping), checkpoints, resuming."""
# Per epoch (docs/spec.md §5): set and print the learning rate, one training pass, one validation pass,
# ask the trainer whether to stop, then write the checkpoint save_path/epoch-N (N = epochs
# done; it holds the weights, optimizer slots, learning rate, epoch and step counters, the
# trainer's history and the dropout/sampling generator) and save_path/weights.npz + dict.
# A later run restores the latest checkpoint and continues up to max_max_epoch epochs in all.
import contextlib
import json
import math
import shutil
import tempfile

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from state_gradients.core import configuration, lm_data
from state_gradients.core.errors import UserError
from state_gradients.files.saved_model import Checkpointer, SavedModel
from state_gradients.training import distribute, optimizers, run_epoch, sampled_softmax

NO_SEED = -1                # TrainingState.seed of a checkpoint written before the `seed` key (seed 1)
# TensorBoard's scalar-plugin tag, so tf.summary.write works without the tensorboard package
_SCALAR = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")).SerializeToString()


# ------------------------------------------------------------------------------ pure logic

def scheduled_learning_rate(epoch, learning_rate, lr_decay=None, max_epoch=None):
    """lr of 0-based epoch i: learning_rate * lr_decay ** max(i + 1 - max_epoch, 0); constant without lr_decay."""
    if lr_decay is None:
        return float(learning_rate)
    return learning_rate * lr_decay ** max(epoch + 1 - max_epoch, 0)


def warmup_cosine_rate(step, learning_rate, warmup_steps, total_steps, min_learning_rate):
    """lr of 0-based training window `step`: linear to learning_rate over warmup_steps windows, then a cosine
    from learning_rate down to min_learning_rate at total_steps (and min_learning_rate after)."""
    if step < warmup_steps:
        return learning_rate * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_learning_rate + 0.5 * (learning_rate - min_learning_rate) * (1.0 + math.cos(math.pi * progress))


def epoch_learning_rate(config, epoch, windows_per_epoch=None):
    """The learning rate the optimizer uses in 0-based epoch i (adam and adagrad: constant; warmup_cosine:
    the rate of the epoch's first window, which needs windows_per_epoch)."""
    if config.lr_schedule == "warmup_cosine":
        return warmup_cosine_rate(epoch * windows_per_epoch, config.learning_rate, config.warmup_steps,
                                  config.max_max_epoch * windows_per_epoch, config.min_learning_rate)
    if config.optimizer != "sgd":
        return float(config.learning_rate)
    return scheduled_learning_rate(epoch, config.learning_rate, config.lr_decay, config.max_epoch)


class FixedEpochs:
    """trainer `trainer`: train max_max_epoch epochs, never stop early."""

    name = "trainer"
    saves_model = False

    def __init__(self, early_stop=None):
        del early_stop
        self.stopped = False

    def decide(self, epoch, valid_ppl, log=print):
        """After 0-based epoch `epoch` with validation perplexity valid_ppl: True = stop."""
        del epoch, valid_ppl, log
        return False

    def state(self):
        return {"name": self.name, "stopped": self.stopped}

    def load(self, state):
        self.stopped = bool(state.get("stopped", False))


class EarlyStopping(FixedEpochs):
    """trainer `earlyStopping` (docs/spec.md §5): from epoch early_stop on (0-based), compare the current
    validation perplexity with each of the previous early_stop ones; every comparison where it is
    not lower adds one to a counter that is never reset; stop when the counter reaches early_stop.
    Epochs that do not stop also save the model as save_path/<basename>.<epoch>."""

    name = "earlyStopping"
    saves_model = True

    def __init__(self, early_stop):
        super().__init__()
        if not isinstance(early_stop, int) or early_stop < 1:
            raise UserError(f"early_stop must be an integer >= 1, got {early_stop!r}")
        self.early_stop = early_stop
        self.previous = []
        self.no_improvement = 0

    def decide(self, epoch, valid_ppl, log=print):
        if epoch >= self.early_stop:
            log(f"epoch {epoch + 1}: check whether validation ppl has improved")
            for previous in self.previous:
                if valid_ppl >= previous:
                    log(f"current validation ppl ({valid_ppl!r}) is not lower than previous validation "
                        f"ppl ({previous!r})")
                    self.no_improvement += 1
                else:
                    log(f"current validation ppl ({valid_ppl!r}) is lower than previous validation "
                        f"ppl ({previous!r})")
            self.previous.pop(0)
        self.previous.append(valid_ppl)
        self.stopped = self.no_improvement >= self.early_stop
        return self.stopped

    def state(self):
        return {**super().state(), "previous": self.previous, "no_improvement": self.no_improvement}

    def load(self, state):
        super().load(state)
        self.previous = [float(p) for p in state.get("previous", [])]
        self.no_improvement = int(state.get("no_improvement", 0))


# The trainer named in a config is looked up here (the original eval'ed the name).
TRAINERS = {cls.name: cls for cls in (FixedEpochs, EarlyStopping)}


def make_trainer(config):
    try:
        cls = TRAINERS[config.trainer]
    except KeyError:
        raise UserError(f"trainer must be one of {', '.join(TRAINERS)}, got {config.trainer!r}") from None
    return cls(config.early_stop)


# ------------------------------------------------------------------------------ checkpoints

class TrainingState(tf.Module):
    """Counters and trainer history that travel with the checkpoint."""

    def __init__(self):
        super().__init__(name="training_state")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)     # epochs done
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)      # training windows done
        self.trainer = tf.Variable("{}", dtype=tf.string, trainable=False)  # trainer state as JSON
        self.seed = tf.Variable(NO_SEED, dtype=tf.int64, trainable=False)    # the config's seed


def scalar(tag, value, step):
    """A TensorBoard scalar in the default summary writer."""
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=_SCALAR)


def make_generator(config):
    """The dropout and sampling generator: seeded by config.seed, unless `random True`."""
    if config.random:
        return tf.random.Generator.from_non_deterministic_state()
    return tf.random.Generator.from_seed(config.seed)


def check_seed(config, state, restored):
    """UserError when the restored checkpoint was trained with another seed than config.seed."""
    saved = int(state.seed.numpy())
    saved = configuration.KEYS["seed"].default if saved == NO_SEED else saved   # written before the key
    if saved != config.seed:
        raise UserError(f"{config.line_of('seed')}: save_path {config.save_path} holds a model trained with seed "
                        f"{saved} (checkpoint {restored}); this config says seed {config.seed}. Resuming would mix "
                        f"the two: use another save_path for seed {config.seed}, or seed {saved} to resume")


# ------------------------------------------------------------------------------ the epoch loop

def train(config, model, corpus, log, *, eval_step=None, jit_compile=None, strategy=None):
    """Train and validate up to max_max_epoch epochs in total, resuming from save_path's latest checkpoint.

    eval_step: a run_epoch.make_eval_step of the model to reuse; jit_compile: see run_epoch.use_xla;
    strategy: a tf.distribute strategy (distribute.make_strategy) whose scope built the model.
    """
    if config.softmax == "sampled":
        sampled_softmax.check_sampled_softmax(model.vocab_size)
    variables = model.trainable_variables
    windows = lm_data.num_batches(len(corpus.train), config.batch_size, config.num_steps)
    with (strategy.scope() if strategy else contextlib.nullcontext()):
        optimizer = optimizers.Optimizer(config.optimizer, variables, epoch_learning_rate(config, 0, windows))
    generator = make_generator(config)   # outside the scope: one stream, drawn in cross-replica context
    chief = distribute.is_chief(strategy)
    state = TrainingState()
    trainer = make_trainer(config)
    objects = {"optimizer": optimizer, "state": state}
    if not config.random:  # a `random` run must not take over a seeded generator's state
        objects["rng"] = generator
    model_dir = SavedModel.from_config(config)
    checkpoints = Checkpointer(config.save_path, model, **objects)

    restored = checkpoints.restore()
    done = int(state.epoch.numpy())
    if restored:
        check_seed(config, state, restored)
        saved = json.loads(state.trainer.numpy().decode("utf-8"))
        if saved.get("name") == trainer.name:
            trainer.load(saved)
        else:
            log(f"Warning: the checkpoint was trained with trainer {saved.get('name')!r}, this config "
                f"uses {trainer.name!r}: its history starts empty")
        log(f"Restored checkpoint {restored} ({done} epoch(s) done)")
    else:
        log(f"No checkpoint in {config.save_path}: training starts from the initial weights")
    if trainer.stopped:
        log(f"Training was stopped by {trainer.name} after epoch {done}; nothing to train")
        return
    if done >= config.max_max_epoch:
        log(f"{done} epoch(s) done, max_max_epoch is {config.max_max_epoch}: nothing to train")
        return
    log(f"Trainable variables: {', '.join(v.name for v in variables)}")

    step_options = dict(batch_size=config.batch_size, num_steps=config.num_steps, keep_prob=config.dropout,
                        max_grad_norm=config.max_grad_norm, emb_dropout=not config.no_emb_dropout,
                        sampled=config.softmax == "sampled")
    initial_state = None
    if strategy is None:
        train_step = run_epoch.make_train_step(model, optimizer, generator, jit_compile=jit_compile, **step_options)
    else:
        train_step = distribute.make_train_step(strategy, model, optimizer, generator, **step_options)
        initial_state = lambda: distribute.zero_state(strategy, model, config.batch_size)  # noqa: E731
        log(f"Data-parallel training ({config.distribute}): {strategy.num_replicas_in_sync} replicas of "
            f"{config.batch_size // strategy.num_replicas_in_sync} rows{'' if chief else '; this worker is not the chief'}")
    if config.lr_schedule == "warmup_cosine":
        per_epoch_step, total = train_step, config.max_max_epoch * windows

        def train_step(inputs, targets, state):
            # `step` (the windows done, checkpointed) picks this window's rate, so a resumed run continues exactly
            optimizer.lr.assign(warmup_cosine_rate(step, config.learning_rate, config.warmup_steps, total,
                                                   config.min_learning_rate))
            return per_epoch_step(inputs, targets, state)
    eval_step = eval_step or run_epoch.make_eval_step(model, jit_compile)
    # only the chief writes into save_path, summaries included
    writer = (tf.summary.create_file_writer(model_dir.summaries_path) if chief
              else tf.summary.create_noop_writer())
    step = int(state.step.numpy())

    def summarise(cost, num_steps):
        nonlocal step
        step += 1
        with writer.as_default():
            scalar("train/cost_per_word", cost / num_steps, step)

    try:
        for epoch in range(done, config.max_max_epoch):
            lr = epoch_learning_rate(config, epoch, windows)
            log(f"Learning rate: {lr!r}")
            optimizer.lr.assign(lr)
            log("Start training epoch...")
            train_ppl = run_epoch.train_epoch(train_step, model, corpus.train, config.batch_size,
                                              config.num_steps, on_batch=summarise, what=corpus.describe("train"),
                                              initial_state=initial_state() if initial_state else None)
            log(f"Epoch: {epoch + 1} Train Perplexity: {train_ppl!r}")
            log("Start validating...")
            valid_ppl = run_epoch.evaluate_pass(model, corpus.valid, config, step=eval_step,
                                                what=corpus.describe("valid"), max_windows=config.valid_batches)
            log(f"Epoch: {epoch + 1} Valid Perplexity: {valid_ppl!r}")
            stop = trainer.decide(epoch, valid_ppl, log)

            state.epoch.assign(epoch + 1)
            state.step.assign(step)
            state.seed.assign(config.seed)
            state.trainer.assign(json.dumps(trainer.state()))
            if chief:
                path = checkpoints.save(epoch + 1)
                model_dir.write_weights(model, corpus.word_to_id)
                log(f"Saved checkpoint {path} and {model_dir.weights_path}")
                if trainer.saves_model and not stop:
                    prefix = model_dir.early_stopping_prefix(epoch + 1)
                    log(f"Saving model to {prefix}")
                    checkpoints.write(prefix)
                with writer.as_default():
                    scalar("epoch/learning_rate", lr, epoch + 1)
                    scalar("epoch/train_perplexity", train_ppl, epoch + 1)
                    scalar("epoch/valid_perplexity", valid_ppl, epoch + 1)
                writer.flush()
            else:
                # every worker saves (a save may synchronise the workers), only the chief into save_path
                scratch = tempfile.mkdtemp(prefix="sg-worker-")
                Checkpointer(scratch, model, **objects).save(epoch + 1)
                shutil.rmtree(scratch, ignore_errors=True)
            if stop:
                log(f"Early stopping after epoch {epoch + 1}: the validation perplexity did not improve "
                    f"{trainer.no_improvement} times")
                break
    finally:
        writer.close()
