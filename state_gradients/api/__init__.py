"""The public API's modules, re-exported by state_gradients: models, data, profiles, measures, plots."""
