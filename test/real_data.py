"""Where the real networks and real labelled street frames for tests live (``../shared/real``).

They are third-party test data (provenance and licences in their README), never part of the
package: a user's clone has no ``../shared/real`` and the tests that need it skip with the reason.
``EVS_REAL_DATA`` names another folder with the same layout.
"""

import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_DATA = os.environ.get('EVS_REAL_DATA') or os.path.normpath(
    os.path.join(REPO, '..', 'shared', 'real'))


def real_path(*parts: str) -> str:
    """Path of a file under the real-data folder (it may not exist; see :data:`requires_real`)."""
    return os.path.join(REAL_DATA, *parts)


requires_real = pytest.mark.skipif(
    not os.path.isdir(REAL_DATA),
    reason=f'real networks and labelled frames not found at {REAL_DATA} (the ../shared/real '
           'folder next to the repository, or EVS_REAL_DATA); a user clone has no test data')
