"""Bayesian mixed models by MCMC (rstanarm's priors, NUTS): ``blmer`` / ``bglmer``.

One module per concept: ``priors`` (rstanarm's prior families, defaults and autoscaling),
``model`` (the posterior log-density and its gradient in an unconstrained parameterisation),
the sampler and the diagnostics.
"""

from . import priors
