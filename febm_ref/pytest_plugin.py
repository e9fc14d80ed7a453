"""pytest plugin of febm-ref (entry point ``pytest11``: loaded automatically once febm-ref
is installed; disable with ``-p no:febm_ref``).

Fixtures
--------
``febm_golden``
    Session-scoped :class:`pathlib.Path` of the golden set of the installed febm-ref (built
    once into the per-version cache, :mod:`febm_ref.conformance.cache`). Pass it to
    :func:`febm_ref.testing.assert_conforms` (``golden=febm_golden``) or read its files.

Nothing is imported from febm_ref at plugin load beyond this module, so the plugin costs a
project that does not use it nothing.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def febm_golden():
    """The golden directory of the installed febm-ref (see the module docstring)."""
    from febm_ref.testing import golden_dir

    return golden_dir()
