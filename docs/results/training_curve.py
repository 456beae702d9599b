"""Write a model's training curve (epoch, learning_rate, train_perplexity, valid_perplexity) as CSV from its TensorBoard scalars.

Usage, from the repository root: python docs/results/training_curve.py SAVE_PATH OUT.csv
main.py writes the scalars epoch/learning_rate (the rate of the epoch's first training step),
epoch/train_perplexity and epoch/valid_perplexity into SAVE_PATH/train/ after every epoch; a
resumed run appends to them (the last value of an epoch wins).
"""
import glob
import os
import sys

TAGS = {"epoch/learning_rate": "learning_rate", "epoch/train_perplexity": "train_perplexity",
        "epoch/valid_perplexity": "valid_perplexity"}


def curve(save_path):
    from state_gradients.core.cli import import_tensorflow

    tf = import_tensorflow()   # quiet

    rows = {}
    for path in sorted(glob.glob(os.path.join(save_path, "train", "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag in TAGS:
                    rows.setdefault(event.step, {})[TAGS[value.tag]] = float(tf.make_ndarray(value.tensor))
    return rows


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    rows = curve(sys.argv[1])
    with open(sys.argv[2], "w", encoding="utf-8") as handle:
        handle.write("epoch,learning_rate,train_perplexity,valid_perplexity\n")
        for epoch in sorted(rows):
            r = rows[epoch]
            handle.write(f"{epoch},{r['learning_rate']:.6g},{r['train_perplexity']:.4f},{r['valid_perplexity']:.4f}\n")
    print(f"wrote {len(rows)} epochs to {sys.argv[2]}")
