"""Run the public API as a new user would: a notebook in a Jupyter kernel, on a model the tests never give the API.

Usage (from the repository root; needs network or a package mirror):
    python3 -m venv /tmp/nbenv && /tmp/nbenv/bin/pip install . nbclient nbformat ipykernel
    /tmp/nbenv/bin/python tests/external/try_api_in_notebook.py [--model ../shared/models/ptb-norm-wsj_64e_256h_steps200]
Writes OUT/api_try.ipynb (executed, with its outputs) and prints each cell's output. The model is
the papers' PTB LSTM (read only: its weights are copied), the text the PTB validation set.
"""
import argparse
import os
import sys

CELLS = [
    '''import os, shutil
import state_gradients as sg
print(sg.__file__)''',
    '''os.makedirs(f"{OUT}/model", exist_ok=True)
for name in ("weights.npz", "dict"):      # a copy: the pass writes labels.tsv beside the model
    shutil.copy(os.path.join(MODEL, name), f"{OUT}/model/{name}")
model = sg.load_model(f"{OUT}/model")
print(model.lm.cell_type, model.lm.embedding.shape, model.lm.size)''',
    '''config = sg.derive(sg.read_config(os.path.join(MODEL, "config.resolved")), path=f"{OUT}/api.config",
                   data_path=DATA, save_path=f"{OUT}/model", log_dir=f"{OUT}/logs", batch_size=1,
                   grad_interm="cell", time_step="all", max_delay=20, grad_average=True, grad_dump=False,
                   grad_blocks=4, valid_batches=4, grad_dir=f"{OUT}/gradients")
profile = sg.MemoryProfile.compute(config, log=lambda line: None)
print(profile.classes, profile.delays[-1], profile.counts[0, :3], round(profile.perplexity, 2))''',
    '''norm = sg.normalisation(model)
est = profile.sv_intervals(norm.d_factor)
for k in (1, 5, 10, 19):
    print(k, round(est.value[0, k], 4), [round(est.lo[0, k], 4), round(est.hi[0, k], 4)])
exp_fit, pow_fit = profile.fit_decay(norm.d_factor)
print("tau", round(exp_fit.rate, 2), "b", round(pow_fit.rate, 3))''',
    '''fig = sg.plot_sv_sums(profile, norm.d_factor)
fig.savefig(f"{OUT}/svs.png")
again = sg.MemoryProfile.load(f"{OUT}/gradients")
print((again.averages == profile.averages).all(), type(fig).__name__)''',
]


def main(argv=None):
    import nbclient
    import nbformat

    here = os.path.dirname(os.path.abspath(__file__))
    shared = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(here))), "shared")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.path.join(shared, "models", "ptb-norm-wsj_64e_256h_steps200"))
    parser.add_argument("--data", default=os.path.join(shared, "data", "ptb"))
    parser.add_argument("--out", default="/tmp/api_try")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    setup = f"OUT, MODEL, DATA = {os.path.abspath(args.out)!r}, {os.path.abspath(args.model)!r}, {os.path.abspath(args.data)!r}"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setup)]
                                        + [nbformat.v4.new_code_cell(c) for c in CELLS])
    # run from a folder outside the checkout, so that only the installed package can be imported
    nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": args.out}}).execute()
    nbformat.write(notebook, os.path.join(args.out, "api_try.ipynb"))
    for i, cell in enumerate(notebook.cells):
        text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream"
                       and o.get("name") == "stdout")
        print(f"[{i}] {text.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
