"""The posteriordb models used by these tests: :mod:`samplers.suite.models` (packaged)."""
from samplers.suite.models import (MODELS, POSTERIORS, Model, build_model,  # noqa: F401
                                   find_posteriordb, garch_sigma2_reference, load_draws,
                                   load_reference)
