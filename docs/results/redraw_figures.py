"""Redraw the committed SV-sum figures from their CSVs with the current plot_svs (log axis, the project's palette).

Usage, from the repository root: python docs/results/redraw_figures.py
Writes svs.png beside every docs/results/*/svs.csv (all classes) and, for the paper model,
svs_pos.png (overall and the POS classes: the figure of the README and the docs' home page).
"""
import glob
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from state_gradients.measures import plot_svs  # noqa: E402

POS = ["overall", "nouns", "verbs", "adjectives", "adverbs", "pronouns", "determiners", "prepositions",
       "conjunctions", "numbers"]

for csv_path in sorted(glob.glob(os.path.join(REPO, "docs", "results", "*", "svs.csv"))):
    folder = os.path.dirname(csv_path)
    plot_svs.redraw(csv_path, os.path.join(folder, "svs.png"))
    print("wrote", os.path.relpath(os.path.join(folder, "svs.png"), REPO))
paper = os.path.join(REPO, "docs", "results", "ptb-64e-256h")
plot_svs.redraw(os.path.join(paper, "svs.csv"), os.path.join(paper, "svs_pos.png"), classes=POS)
print("wrote", os.path.relpath(os.path.join(paper, "svs_pos.png"), REPO))
