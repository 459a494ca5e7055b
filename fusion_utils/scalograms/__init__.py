"""ECGs as images: the Morse continuous wavelet transform, montages, their cache and figures.

Public names are re-exported here and imported lazily (``lazy_loader``), so that
``import fusion_utils.scalograms`` stays cheap; the modules are ``cache``, ``montage``, ``morse``,
``plots``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["cache", "montage", "morse", "plots"],
    submod_attrs={
        "cache": [
            "BuildSummary", "ScalogramCache", "ScalogramFolderConflict", "record_dataset_dir"
        ],
        "montage": [
            "LAYOUTS", "LEADS", "NORMALISATIONS", "MontageParams", "colormap_lut", "lead_grid",
            "mean_scalograms", "normalise_scalograms", "record_to_montage",
            "records_to_montage_indices", "records_to_montages", "scalograms_to_montage",
            "tile_boxes"
        ],
        "morse": [
            "MorseWavelet", "cwt_scalogram", "morse_filter_bank", "morse_frequencies",
            "morse_scales", "morse_scalogram", "morse_wavelet", "morse_wavelet_time",
            "pywt_wavelet_names", "torch_worker_pool"
        ],
        "plots": [
            "frequency_ticks", "plot_frequency_profiles", "plot_lead_scalograms", "plot_montages",
            "plot_morse_wavelet"
        ],
    },
)
