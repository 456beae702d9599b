"""The one figure helper: a matplotlib Figure on an Agg canvas, and its PNG as bytes or as a file."""
# The object API with an explicit Agg canvas: no display needed and no global pyplot state, so
# figures drawn in a test, a notebook or a command line never see each other.
from state_gradients.core import fileio


def new_figure(width=6.4, height=4.8):
    """An empty Figure of width x height inches with an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _options(dpi, stamp):
    # stamp False: no "Software: matplotlib x.y" text chunk, so the report's PNGs are the same bytes whichever
    # matplotlib drew them
    return {"format": "png", "dpi": dpi, **({} if stamp else {"metadata": {"Software": None}})}


def png_bytes(fig, dpi="figure", stamp=True):
    """The PNG of fig (dpi "figure": the figure's own, 100)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, **_options(dpi, stamp))
    return buffer.getvalue()


def save_png(fig, path, dpi="figure", stamp=True):
    """Write the PNG of fig to path atomically (never a half-written file under the name)."""
    fileio.atomic_write(path, lambda tmp: fig.savefig(tmp, **_options(dpi, stamp)))
