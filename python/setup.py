"""Builds the unitfp8 Rust library (../Cargo.toml, release) into the package as a plain shared
library (`unitfp8/_native*.so`), loaded with ctypes at run time.

Build-time option: `UNITFP8_FEATURES=cuda pip install ./python` builds the CUDA back end too
(needs nvcc, see scripts/cuda-check.sh). Nothing is read from the environment at run time.
"""

import os
import pathlib

from setuptools import setup
from setuptools_rust import Binding, RustExtension

HERE = pathlib.Path(__file__).resolve().parent
features = [f for f in os.environ.get("UNITFP8_FEATURES", "").split(",") if f]

setup(
    rust_extensions=[
        RustExtension(
            "unitfp8._native",
            path=str(HERE.parent / "Cargo.toml"),
            binding=Binding.NoBinding,
            features=features,
            py_limited_api=False,
            debug=False,
        )
    ],
    zip_safe=False,
)
