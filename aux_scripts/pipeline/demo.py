"""Compatibility: `from aux_scripts.pipeline import demo` (the tutorial's path until 2026-12-07) is state_gradients.workflows.demo."""
from state_gradients.workflows.demo import *  # noqa: F401,F403
from state_gradients.workflows.demo import run_demo, run_other_measures  # noqa: F401
