"""posteriordb reference posteriors as batched autodiff log densities, and their tests.

The data (``data.json``, ``reference.json``, ``draws.npz`` per posterior) live outside
the repository, in ``$ZSARRAY_SHARED/posteriordb`` or ``<repo>/../shared/posteriordb``;
see :func:`tests.posteriordb.models.find_posteriordb`. Tests skip when it is absent.
"""
