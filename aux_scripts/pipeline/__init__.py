"""The old home of the workflows, kept for the import path the tutorial documented until 2026-12-07."""
