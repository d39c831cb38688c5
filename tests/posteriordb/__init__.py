"""Tests against the posteriordb reference posteriors of :mod:`samplers.suite`.

The models, their data and the reference summaries ship with the package; the
reference draws (``draws.npz`` per posterior) live outside the repository, in
``$ZSARRAY_SHARED/posteriordb`` or ``<repo>/../shared/posteriordb`` (see
:func:`samplers.suite.models.find_posteriordb`). Tests that need them skip when absent.
"""
