"""Utilities for the fusion book: medical image features fused with patient metadata.

Reproduces and extends Thomas (2021), "Enhanced Transfer Learning Through Medical Imaging and
Patient Demographic Data Fusion". The subpackages follow the book's parts (``data``,
``scalograms``, ``features``, ``fusion``, ``evaluation``, ``interpret``, ``experiments``); the
infrastructure modules (``paths``, ``io``, ``notebook_runner``, ``run_folder``) sit at the top.
Everything is imported on demand (``lazy_loader``), so ``import fusion_utils`` loads no torch.
"""

import lazy_loader as _lazy

__version__ = "0.1.0"

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["data", "evaluation", "experiments", "features", "fusion", "interpret", "io",
                "notebook_runner", "paths", "run_folder", "scalograms"],
)
__all__ += ["__version__"]
