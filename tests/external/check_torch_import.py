"""Import PyTorch-saved LMs and compare states and state gradients with PyTorch's own outputs (needs torch for `make`)."""
# Shape letters: B rows, T time, E embedding, H state, V vocabulary.
import argparse
import os
import shutil
import sys

import numpy as np

KINDS = [("LSTM", False), ("GRU", False), ("RNN", False), ("LSTM", True)]
V, H, T = 23, 6, 9


def make(folder):
    """Models, state dicts (.pt and .safetensors), outputs (ref.npz) and Jacobians d h_{T-1} / d x, with torch."""
    import torch
    from safetensors.torch import save_file
    from torch import nn

    torch.manual_seed(0)

    class RNNModel(nn.Module):  # pytorch/examples word_language_model, batch-first
        def __init__(self, kind, emb, tie):
            super().__init__()
            self.encoder = nn.Embedding(V, emb)
            self.rnn = getattr(nn, kind)(emb, H, 2, batch_first=True)
            self.decoder = nn.Linear(H, V)
            if tie:
                self.decoder.weight = self.encoder.weight
            for p in self.parameters():
                nn.init.uniform_(p, -0.5, 0.5)

        def forward(self, ids):
            out, _ = self.rnn(self.encoder(ids))
            return out, self.decoder(out)

    os.makedirs(folder, exist_ok=True)
    for kind, tie in KINDS:
        name = f"{kind}{'_tied' if tie else ''}"
        model = RNNModel(kind, H if tie else 5, tie)
        state = model.state_dict()
        torch.save(state, os.path.join(folder, f"{name}.pt"))
        save_file({k: v.contiguous() for k, v in state.items() if not (tie and k == "decoder.weight")},
                  os.path.join(folder, f"{name}.safetensors"))
        model = model.double()
        ids = torch.randint(0, V, (2, T))
        hidden, logits = model(ids)
        np.savez(os.path.join(folder, f"{name}_ref.npz"), ids=ids.numpy(), logits=logits.detach().numpy(),
                 hidden=hidden.detach().numpy())
        x = model.encoder(ids[:1]).detach()
        jac = torch.autograd.functional.jacobian(lambda x: model.rnn(x)[0][0, T - 1], x)   # [H, 1, T, E]
        np.save(os.path.join(folder, f"{name}_jac.npy"), jac[:, 0].numpy())
        with open(os.path.join(folder, f"{name}.vocab"), "w", encoding="utf-8") as handle:
            handle.write("".join(f"w{i}\n" for i in range(V)))
    print(f"wrote {len(KINDS)} models to {folder}")


def check(folder):
    """Import every model (.pt and .safetensors, --reference) and compare the engine's Jacobians with torch's."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    import tensorflow as tf

    from aux_scripts import import_model
    from state_gradients.engine.recurrent import state_gradients
    from state_gradients.files.saved_model import SavedModel

    for kind, tie in KINDS:
        name = f"{kind}{'_tied' if tie else ''}"
        for ext in ("pt", "safetensors"):
            out = os.path.join(folder, f"imported_{name}_{ext}")
            shutil.rmtree(out, ignore_errors=True)
            status = import_model.main(["--from", "torch", os.path.join(folder, f"{name}.{ext}"), "--vocab",
                                        os.path.join(folder, f"{name}.vocab"), "--out", out, "--reference",
                                        os.path.join(folder, f"{name}_ref.npz")])
            if status != 0:
                sys.exit(f"{name}.{ext}: sg-import exited with {status}")
        model = SavedModel(out).load(tf.float64)
        ids = np.load(os.path.join(folder, f"{name}_ref.npz"))["ids"][:1]
        grads = state_gradients(model, ids, model.zero_state(1), layer=1,
                                component=len(model.cell.state_names) - 1, time_steps=[T - 1], max_delay=T)
        jac = np.load(os.path.join(folder, f"{name}_jac.npy"))                                # [H, T, E]
        error = max(np.abs(g[0, 0] - jac[:, T - 1 - k]).max() for k, (_, g) in grads.items()) / np.abs(jac).max()
        print(f"{name}: state gradients d h_{T - 1} / d x_(t-k), k = 0..{T - 1}: largest difference from "
              f"torch.autograd / largest entry = {error:.1e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("step", choices=["make", "check"], help="make: with torch; check: with this project")
    parser.add_argument("folder", help="where the models and outputs go")
    args = parser.parse_args()
    (make if args.step == "make" else check)(args.folder)


if __name__ == "__main__":
    main()
