"""Physics-informed Bayesian optimisation (``kind: botorch``), in BoTorch's own layers:

- :mod:`.prior`: the digital twin as the prior mean, read for the lab (:class:`~.prior.Reading`),
  recalibrated on its data (:class:`~.prior.Recalibration`), and how far to trust it;
- :mod:`.surrogate`: GPs on what the twin misses (fits, posteriors, evidence) and the
  calibration of the reported uncertainty;
- :mod:`.acquisition`: the window and Pareto objectives, feasibility weighting, the mixture over
  models;
- :mod:`.candidates`: the discrete candidates an ask chooses among;
- :mod:`.planner`: :class:`BoTorchPlanner`, the glue (its docstring has the model's math).
"""

from planners.botorch.planner import BoTorchPlanner

__all__ = ["BoTorchPlanner"]
