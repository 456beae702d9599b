"""The report of a reproduction folder: fits, rankings, findings, figures, Markdown and HTML."""
