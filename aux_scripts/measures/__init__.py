"""The measures of memory: averaging and SVD measures, uncertainty from blocks, verdicts, the numpy reference RNN."""
