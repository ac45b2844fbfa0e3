# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # Classifying cells from Python
#
# raphe's Python API does what `raphe classify` does, to files, folders, numpy arrays and neo
# objects. Open this file as a notebook with jupytext (`jupytext --to notebook
# classify_in_a_notebook.py`), or run it as a script: `python examples/classify_in_a_notebook.py`.
# Set `RECORDING` to one of your own files; without one, raphe makes two synthetic cells to classify.

# %%
import tempfile
from pathlib import Path

import pyabf

import raphe
from raphe.classifier.synthetic.dataset import synthesize

RECORDING = None  # e.g. "cell.abf"

if RECORDING is None:
    folder = Path(tempfile.mkdtemp()) / "cells"
    synthesize(folder, cells=2, days=1, seed=31, duration_s=12.0)
    RECORDING = sorted((folder / "abf").glob("*.abf"))[0]

# %% [markdown]
# ## A file
# One result per cell (per channel in pA): its decision, its posterior and its spikes.

# %%
cells = raphe.classify(RECORDING)
for cell in cells:
    print("file: ", cell)

# %% [markdown]
# ## An array
# A trace you hold already, here read with pyabf: a 1-D array is one channel, a 2-D array is
# channels x samples; give its sample rate (and `units=` if it is not in pA).

# %%
abf = pyabf.ABF(str(RECORDING))
for cell in raphe.classify(abf.sweepY, rate=abf.sampleRate, name=Path(RECORDING).stem):
    print("array:", cell)

# %% [markdown]
# ## A table
# `to_dataframe` gives the rows of `raphe classify --out` (pandas needed).

# %%
table = raphe.to_dataframe(cells)
print(table[["stream", "channel_name", "n_spikes", "decision", "posterior_SER", "spikes_to_decision"]]
      .to_string(index=False))

# %% [markdown]
# ## The spikes
# Each result keeps its spikes' times and the windows the model classified.

# %%
first = cells[0]
print(f"{first.cell}: {first.n_spikes} spikes, the first at {first.spike_times_s[:3].round(4)} s; "
      f"windows {first.windows.shape}; mean trough {first.windows.min(axis=1).mean():.1f} pA")
