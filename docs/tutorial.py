# %% [markdown]
# # Tutorial: the demo's memory analysis through the Python API
#
# A literate script: each `# %%` starts a cell, so Jupyter (with jupytext), VS Code and
# PyCharm open it as a notebook, and `python docs/tutorial.py` runs it top to bottom. The test
# suite runs it (tests/e2e/test_tutorial.py), so every line here works with the code it ships with.
#
# It loads the demo's trained LSTM, computes a memory profile with blocks of the validation
# text, plots the SV sums per class with their 95% intervals, and compares two classes.
# The demo language (data/demo/README.md) plants a memory: the verb agrees with the subject
# noun 1-8 words back, while nothing later depends on the filler words in between.

# %%
import os

import numpy as np

import state_gradients as sg

OUT = os.environ.get("SG_TUTORIAL_OUT", "demo_output")     # where sg-demo wrote (or writes) its files

# %% [markdown]
# ## 1. A trained model
# `sg-demo` trains the demo LSTM into `demo_output/model` (about 20 s on 2 cores). This cell runs
# it when that folder has no model yet; `sg.load_model` then reads the folder (a config file, a
# save_path, weights.npz + dict and an `sg-import` output work the same way).

# %%
if not os.path.isfile(os.path.join(OUT, "model", "weights.npz")):
    from state_gradients.workflows import demo                 # the command line's job, as a function
    demo.run_demo(OUT)
model = sg.load_model(os.path.join(OUT, "model"))
print(f"{model.lm.cell_type} with {len(model.word_to_id)} words, E {model.lm.embedding_size}, H {model.lm.size}")

# %% [markdown]
# ## 2. A memory profile with blocks
# `MemoryProfile.compute` runs the gradient pass of a config (here the demo's, with all time
# steps and 12 delays) and returns the averages per delay and class, their counts, and the
# per-block sums that give intervals. Keyword arguments change config keys (checked as a config
# file is); the pass writes its usual files into `grad_dir`, where `MemoryProfile.load` finds
# them again, and it resumes when interrupted.

# %%
profile = sg.MemoryProfile.compute(os.path.join(OUT, "configs", "demo_grad.config"),
                                   grad_dir=os.path.join(OUT, "tutorial_gradients"), grad_blocks=10,
                                   log=lambda line: None)
print("classes:", profile.classes)
print("delays:", profile.delays[0], "..", profile.delays[-1], "| blocks:", len(profile.blocks))
print("validation perplexity:", round(profile.perplexity, 2))

# %% [markdown]
# ## 3. SV sums of G·D with intervals
# Gradients are read in the normalised embedding space: G·D with C = D Dᵀ the embedding
# covariance. `sv_intervals` gives, per class and delay, the plain SV sum (`value`), a
# bias-corrected estimate and its 95% interval over the blocks (docs/intervals.md).

# %%
norm = sg.normalisation(model)
est = profile.sv_intervals(norm.d_factor)
for cls in ("nouns", "adjectives", "adverbs"):
    row = est.row(cls)
    print(f"{cls:>10} k=6: {row['value'][6]:.4f}, bias-corrected {row['estimate'][6]:.4f} "
          f"[{row['lo'][6]:.4f}, {row['hi'][6]:.4f}]")

# %%
fig = sg.plot_sv_sums(profile, norm.d_factor, ["nouns", "adjectives", "adverbs"])
fig.savefig(os.path.join(OUT, "tutorial_svs.png"))
fig          # a notebook shows the Figure here

# %% [markdown]
# ## 4. Compare two classes
# Is the nouns' SV sum above the adjectives' at long delays (4-11)? The comparison is the mean
# difference with its bias-corrected jackknife interval; the answer depends on the training run
# (README: over 5 seeds the nouns were above the fillers in 3), so read the interval, not the sign.

# %%
comparison = profile.intervals(norm.d_factor).compare("nouns", "adjectives", range(4, 12))
print(f"{comparison.name}: {comparison.estimate:.4f}, 95% interval [{comparison.lo:.4f}, {comparison.hi:.4f}], "
      f"p = {comparison.p:.3g}")

# %% [markdown]
# ## 5. How fast memory fades
# The overall SV sum against the delay, fitted by an exponential and a power law.

# %%
exp_fit, pow_fit = profile.fit_decay(norm.d_factor)
print(f"exponential tau {exp_fit.rate:.2f} (rmse of log {exp_fit.rmse_log:.3f}); "
      f"power law b {pow_fit.rate:.2f} (rmse of log {pow_fit.rmse_log:.3f})")
assert np.isfinite(exp_fit.rate) and np.isfinite(pow_fit.rate)
