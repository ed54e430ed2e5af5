"""Hardware-in-the-loop CI (``tvmq ci``): a matrix of models, datasets and boards,
run through the harness and judged against budgets and a committed baseline.

``matrix`` reads the matrix file, ``runner`` compiles and measures every entry
on its board, ``checks`` judges the figures, ``report`` writes JUnit XML,
Markdown and plots, ``command`` ties them together for the CLI.
"""
