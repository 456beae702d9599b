"""Memory measures: averages and SVDs, intervals and verdicts, sigma, TX-Ray, the gradient check."""
