"""Auto-tuning: MetaSchedule with the XGBoost cost model, per target.

``tasks`` finds what to tune in a model, ``space`` says how each kernel may be
scheduled, ``board`` and ``runners`` measure candidates, ``database`` keeps the
records in ``schedules/<target>/``, ``apply`` uses them when building, and
``tuner`` drives a tuning run (``tvmq tune``, ``command``).
"""

# flash: a tuned kernel's code stays close to its default schedule's; speed: the fastest.
OBJECTIVES = ("flash", "speed")
