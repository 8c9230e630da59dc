"""A training run end to end, as a library (ARCHITECTURE.md, "a training run").

* :mod:`~daft_agent.runs.config`: :class:`RunConfig`, the one list of a run's settings (presets,
  tiny sizes, ``--set`` overrides).
* :mod:`~daft_agent.runs.envs`: the operated env recipe that training, evaluation, video, the
  fleet's robots and the benchmarks share.
* :mod:`~daft_agent.runs.report`: learning curve, conditions, intervention shares, results.json.
* :mod:`~daft_agent.runs.train`: :func:`train_run`, demos -> warm-up -> online (one robot or a
  fleet) -> evaluation -> results.

Nothing is imported here, so ``daft_agent.runs.envs`` stays light for the fleet's robot processes.
"""
