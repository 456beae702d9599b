"""trainer: learning-rate schedule and early stopping on scripted perplexities; checkpoints."""
import json
import types

import numpy as np
import pytest
import tensorflow as tf

from state_gradients.core import configuration
from state_gradients.core.errors import UserError
from state_gradients.files.saved_model import Checkpointer, SavedModel
from state_gradients.models.lm import LanguageModel
from state_gradients.training import optimizers, trainer


def test_learning_rate_schedule():
    # learning_rate 1, lr_decay 0.5, max_epoch 2: two epochs at 1, then halved every epoch
    assert [trainer.scheduled_learning_rate(i, 1.0, 0.5, 2) for i in range(5)] == [1.0, 1.0, 0.5, 0.25, 0.125]
    assert [trainer.scheduled_learning_rate(i, 0.8, 0.5, 0) for i in range(2)] == [0.4, 0.2]
    assert [trainer.scheduled_learning_rate(i, 0.3) for i in range(3)] == [0.3, 0.3, 0.3]


def test_adam_and_adagrad_use_the_constant_learning_rate():
    keys = dict(save_path="m", log_dir="l", data_path="d", vocab=False, batch_size=1, num_steps=1, size=1,
                basic_cell="RNN", num_layers=1, init_scale=0.1, softmax="full", dropout=1, max_grad_norm=5,
                max_max_epoch=5, trainer="trainer", learning_rate=1.0, lr_decay=0.5, max_epoch=1)
    assert trainer.epoch_learning_rate(configuration.config_from_dict(dict(keys, optimizer="sgd")), 3) == 0.125
    assert trainer.epoch_learning_rate(configuration.config_from_dict(dict(keys, optimizer="adam")), 3) == 1.0


def _stop_epoch(early_stop, ppls):
    """1-based epoch after which earlyStopping stops (None: never), and its counter."""
    rule = trainer.EarlyStopping(early_stop)
    for epoch, ppl in enumerate(ppls):
        if rule.decide(epoch, ppl, log=lambda message: None):
            return epoch + 1, rule.no_improvement
    return None, rule.no_improvement


def test_early_stopping_hand_worked_sequences():
    # early_stop 2: epoch 3 (95) is not lower than 90 -> 1; epoch 5 (96) not lower than 95 and 85 -> 3
    assert _stop_epoch(2, [100, 90, 95, 85, 96, 97]) == (5, 3)
    # the counter is never reset: 9.5 >= 9 at epoch 3, then 8.5 >= 8 at epoch 5 reaches 2
    assert _stop_epoch(2, [10, 9, 9.5, 8, 8.5, 7]) == (5, 2)
    # early_stop 1: compare with the previous epoch only; equal counts as no improvement
    assert _stop_epoch(1, [10, 9, 9, 8]) == (3, 1)
    # steady improvement never stops; the first early_stop epochs are never compared
    assert _stop_epoch(3, [9, 10, 11, 8, 7, 6, 5]) == (None, 0)
    # early_stop 3: 31 >= 30 (1); 35 is not lower than 31, 29, 28 (+3)
    assert _stop_epoch(3, [50, 40, 30, 31, 29, 28, 35, 20]) == (7, 4)


def test_early_stopping_state_round_trips_through_json():
    first = trainer.EarlyStopping(2)
    for epoch, ppl in enumerate([10, 9, 9.5]):
        first.decide(epoch, ppl, log=lambda m: None)
    resumed = trainer.EarlyStopping(2)
    resumed.load(json.loads(json.dumps(first.state())))
    log = []
    assert resumed.decide(3, 9.25, log=log.append) == first.decide(3, 9.25, log=lambda m: None) is True
    assert log[0] == "epoch 4: check whether validation ppl has improved"
    assert log[1:] == ["current validation ppl (9.25) is not lower than previous validation ppl (9.0)",
                       "current validation ppl (9.25) is lower than previous validation ppl (9.5)"]


def test_fixed_epochs_never_stops_and_trainers_are_looked_up():
    rule = trainer.FixedEpochs()
    assert not any(rule.decide(i, 100.0 + i) for i in range(10))
    assert set(trainer.TRAINERS) == {"trainer", "earlyStopping"}
    assert isinstance(trainer.make_trainer(types.SimpleNamespace(trainer="earlyStopping", early_stop=3)),
                      trainer.EarlyStopping)
    with pytest.raises(UserError, match="trainer must be one of"):
        trainer.make_trainer(types.SimpleNamespace(trainer="__import__('os')", early_stop=None))


def test_early_stopping_prefix_is_inside_save_path():
    assert SavedModel("models/x").early_stopping_prefix(3) == "models/x/x.3"
    assert SavedModel("models/x/").early_stopping_prefix(3) == "models/x/x.3"


def _model(size=4):
    return LanguageModel(9, 3, size, 1, "LSTM", init_scale=0.3)


def test_checkpoint_round_trip_with_optimizer_and_state(tmp_path):
    model = _model()
    optimizer = optimizers.Optimizer("adam", model.trainable_variables, 0.1)
    state = trainer.TrainingState()
    ckpt = Checkpointer(str(tmp_path), model, optimizer=optimizer, state=state)
    assert ckpt.restore() is None
    optimizer.apply([tf.ones_like(v) for v in model.trainable_variables], model.trainable_variables)
    state.epoch.assign(3)
    state.trainer.assign(json.dumps({"name": "earlyStopping", "previous": [1.5]}))
    path = ckpt.save(3)
    assert path.endswith("epoch-3")

    fresh = _model()
    fresh_opt = optimizers.Optimizer("adam", fresh.trainable_variables, 0.1)
    fresh_state = trainer.TrainingState()
    assert Checkpointer(str(tmp_path), fresh, optimizer=fresh_opt, state=fresh_state).restore() == path
    for a, b in zip(model.trainable_variables, fresh.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(fresh_opt.m[0].numpy(), optimizer.m[0].numpy())
    assert float(fresh_opt.beta1_power.numpy()) == pytest.approx(0.81)
    assert int(fresh_state.epoch.numpy()) == 3
    assert json.loads(fresh_state.trainer.numpy())["previous"] == [1.5]


def test_restoring_into_a_different_model_is_a_user_error(tmp_path):
    Checkpointer(str(tmp_path), _model(4)).save(1)
    with pytest.raises(UserError, match="cannot restore checkpoint .*epoch-1"):
        Checkpointer(str(tmp_path), _model(5)).restore()
