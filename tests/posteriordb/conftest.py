"""Fixtures of the posteriordb tests: locate the shared data or skip with the reason.

The data folder is ``$ZSARRAY_SHARED/posteriordb`` or ``<repo>/../shared/posteriordb``
(:func:`tests.posteriordb.models.find_posteriordb`).
"""
import pytest

from .models import MODELS, find_posteriordb

SKIP_REASON = ("posteriordb reference data not found: set ZSARRAY_SHARED to the folder that "
               "holds posteriordb/ (or place it at <repo>/../shared/posteriordb)")


@pytest.fixture(scope="session")
def posteriordb_root():
    """Path of the posteriordb folder; skips the test when it is absent."""
    root = find_posteriordb()
    if root is None:
        pytest.skip(SKIP_REASON)
    return root

