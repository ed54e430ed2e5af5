"""Mixed precision under the user's budgets (``tvmq optimize``).

Per weighted layer the choices are int8, a 16-centroid codebook and int4 weights
(:mod:`tvmq.quantize.low_bit`, :mod:`tvmq.quantize.codebook`). Each layer's
accuracy cost is measured alone, a greedy walk from all-int8 gives a front of
configurations, and every point of the front is built and run on the emulated
board, so the budgets are judged on the target's real flash, RAM and instructions.
"""
