"""The CUDA modules really contain device code for every listed architecture.

CUDA wheels that silently ship no GPU code are a known failure of other projects: where
nvcc exists (and CUDA was not switched off), this test fails unless every _cuda_* module
carries SASS for each real architecture and PTX for each virtual one.
"""

import glob
import os
import shutil

import pytest

import pygenmod
from pygenmod._fatbin import embedded_architectures

try:
    from pygenmod import _build_info as bi
except ImportError:  # pragma: no cover - extension not built at all
    bi = None


def _expected():
    want = set()
    for arch in bi.CUDA_ARCHITECTURES:
        num, _, kind = arch.partition("-")
        kinds = {"real": ["sass"], "virtual": ["ptx"]}.get(kind, ["sass", "ptx"])
        want |= {(k, int(num)) for k in kinds}
    return want


@pytest.mark.skipif(bi is None, reason="extension not built")
def test_cuda_modules_embed_device_code_for_listed_architectures():
    if bi.CUDA_REQUESTED == "OFF":
        pytest.skip("built with PYGENMOD_CUDA=OFF")
    if not bi.CUDA_BUILT:
        assert shutil.which("nvcc") is None, "nvcc is on PATH but the CUDA modules were not built"
        pytest.skip("no nvcc at build time: CPU-only build")
    mods = glob.glob(os.path.join(os.path.dirname(pygenmod.__file__), "_cuda_*.so"))
    assert mods, "CUDA build reported but no _cuda_* modules are installed"
    for path in mods:
        found = embedded_architectures(path)
        missing = _expected() - found
        assert not missing, f"{os.path.basename(path)} lacks device code for {sorted(missing)} (has {sorted(found)})"


@pytest.mark.skipif(bi is None or not bi.CUDA_BUILT, reason="CUDA modules not built")
def test_cuda_module_imports_without_a_gpu():
    from pygenmod import _cuda_runtime

    assert _cuda_runtime.device_count() >= 0
