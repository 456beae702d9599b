"""One colour per word class in every figure the project draws (the report, plot_svs, sigma, TX-Ray)."""
# A class keeps its colour in every figure, whatever else is drawn beside it: the papers' POS
# classes have fixed colours (Okabe-Ito and tab10 hues, distinguishable in colour-blind vision
# where possible), the frequency bins a light-to-dark ramp in frequency order, `overall` black;
# a class in context (`ctx_nouns`) takes the colour of its type-level class (`nouns`) and a
# dashed line; any other name gets a stable colour from its spelling (crc32, not Python's
# salted hash), so a user's own classes also keep theirs across figures and runs.
import re
import zlib

from state_gradients.core.formats import OVERALL

CONTEXT_PREFIX = "ctx_"
FIXED = {
    OVERALL: "#000000",
    "nouns": "#0072B2",        # blue
    "verbs": "#D55E00",        # vermillion
    "adjectives": "#009E73",   # bluish green
    "adverbs": "#CC79A7",      # reddish purple
    "pronouns": "#E69F00",     # orange
    "determiners": "#56B4E9",  # sky blue
    "prepositions": "#8C564B",  # brown
    "conjunctions": "#7F7F7F",  # grey
    "numbers": "#BCBD22",      # olive
    "interjections": "#17BECF",  # cyan
    "nouns+unk": "#1F3A93",    # dark blue: nouns and the unknown word
}
# frequency bins, rarest (yellow) to most frequent (dark), by the decade of the bin's lower bound
FREQ_RAMP = ("#FEC44F", "#FB9A29", "#EC7014", "#CC4C02", "#8C2D04", "#4A1486")
OTHERS = ("#1B9E77", "#7570B3", "#E7298A", "#66A61E", "#A6761D", "#666666", "#E41A1C", "#377EB8",
          "#4DAF4A", "#984EA3", "#FF7F00", "#A65628", "#F781BF", "#999999")
_BIN = re.compile(r"^freq_(\d+)(?:-\d+|\+)$")


def base_name(name):
    """The type-level class of a class in context (`ctx_nouns` -> `nouns`); other names unchanged."""
    return name[len(CONTEXT_PREFIX):] if name.startswith(CONTEXT_PREFIX) else name


def color(name):
    """The colour (#RRGGBB) of a class name, the same in every figure."""
    name = base_name(name)
    if name in FIXED:
        return FIXED[name]
    match = _BIN.match(name)
    if match:
        # bins of powers of ten (1-9, 10-99, ...): their decade picks the shade
        decade = len(match.group(1)) - 1
        return FREQ_RAMP[min(decade, len(FREQ_RAMP) - 1)]
    return OTHERS[zlib.crc32(name.encode("utf-8")) % len(OTHERS)]


def style(name):
    """Line options of a class: its colour, solid (dashed for a class in context), thicker for overall."""
    return {"color": color(name), "linestyle": "--" if name.startswith(CONTEXT_PREFIX) else "-",
            "linewidth": 2.0 if name == OVERALL else 1.2}
