"""The pipeline of a reproduction: the report built from result files (later: seeds, the run table)."""
