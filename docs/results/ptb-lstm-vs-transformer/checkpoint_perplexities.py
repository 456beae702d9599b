"""Perplexity of every epoch checkpoint of a training run on windows that carry no state (sg-compare's protocol), as CSV.

Usage, from the repository root:
    python docs/results/ptb-lstm-vs-transformer/checkpoint_perplexities.py CONFIG CHECKPOINT_DIR OUT.csv [T]
CONFIG is the config that trained the checkpoints (its model and data_path); CHECKPOINT_DIR holds
epoch-N.index / epoch-N.data-* files (a copy of every epoch of the run: the trainer keeps the last 5).
Writes epoch, valid_ppl_windows, test_ppl_windows: run_epoch.window_perplexity on T-token windows
(default 200, non-overlapping), a recurrent model's state reset to zeros at every window, the
protocol of compare_models.csv; the quality-matched model is the epoch whose validation value is
closest to the other model's.
"""
import glob
import os
import re
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def perplexities(config_path, directory, num_steps=200):
    """{epoch: (valid, test) perplexity on num_steps windows without carried state} of every checkpoint in directory."""
    from state_gradients.api import models
    from state_gradients.core import lm_data
    from state_gradients.core.cli import import_tensorflow
    from state_gradients.core.errors import UserError
    from state_gradients.files.saved_model import Checkpointer
    from state_gradients.models import lm
    from state_gradients.training import run_epoch

    import_tensorflow()     # quiet
    config = models.read_config(config_path, valid=True, test=True)
    corpus = lm_data.load_corpus(config, need_train=False, need_valid=True, need_test=True)
    model = lm.build_model(config, corpus, log=lambda m: None)
    epochs = sorted(int(re.search(r"epoch-(\d+)\.index$", p).group(1))
                    for p in glob.glob(os.path.join(directory, "epoch-*.index")))
    if not epochs:
        raise UserError(f"{directory}: no epoch-N.index checkpoint")
    step = run_epoch.make_token_loss_step(model)
    out = {}
    for epoch in epochs:
        Checkpointer(directory, model).restore(os.path.join(directory, f"epoch-{epoch}"))
        out[epoch] = tuple(run_epoch.window_perplexity(model, getattr(corpus, split), num_steps, num_steps, step=step,
                                                       what=f"epoch {epoch} {split}") for split in ("valid", "test"))
        print(f"epoch {epoch}: valid {out[epoch][0]:.2f}, test {out[epoch][1]:.2f}", flush=True)
    return out


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__.split("\n\n")[1])
    rows = perplexities(sys.argv[1], sys.argv[2], int(sys.argv[4]) if len(sys.argv) == 5 else 200)
    with open(sys.argv[3], "w", encoding="utf-8") as handle:
        handle.write("epoch,valid_ppl_windows,test_ppl_windows\n")
        for epoch, (valid, test) in sorted(rows.items()):
            handle.write(f"{epoch},{valid:.4f},{test:.4f}\n")
    print(f"wrote {len(rows)} epochs to {sys.argv[3]}")
