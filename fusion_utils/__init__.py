"""Utilities for the fusion book: medical image features fused with patient metadata.

Reproduces and extends Thomas (2021), "Enhanced Transfer Learning Through Medical Imaging and
Patient Demographic Data Fusion". Submodules are imported on demand so that ``import
fusion_utils`` stays cheap (no torch at import time).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
