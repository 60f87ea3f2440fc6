"""pytest settings shared by every test module.

torch.compile (Inductor) keeps its generated code in a cache folder under the system's temporary
directory and never removes it; over many runs it grows to gigabytes. The tests point it at a
temporary folder of their own, made when pytest starts and removed when it finishes, unless
TORCHINDUCTOR_CACHE_DIR is already set (then that folder is used and kept).
"""

import os
import shutil
import tempfile

_OWN_CACHE = None
if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    # Set before any test module imports torch; worker processes inherit it.
    _OWN_CACHE = tempfile.mkdtemp(prefix="unitfp8-inductor-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = _OWN_CACHE


def pytest_sessionfinish(session, exitstatus):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
