"""The data: PTB-XL and HAM10000 loaders, splits, the manifest, downloads and the demo cohort.

Public names are re-exported here and imported lazily (``lazy_loader``), so that
``import fusion_utils.data`` stays cheap; the modules are ``demo``, ``download``, ``ham10000``,
``manifest``, ``plots``, ``ptbxl``, ``splits``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["demo", "download", "ham10000", "manifest", "plots", "ptbxl", "splits"],
    submod_attrs={
        "demo": [
            "CLASS_FLOOR", "FORMAT_VERSION", "HAM_CLASSES", "HAM_COLUMNS", "IMAGE_AMBIGUITY",
            "PTBXL_CLASSES", "PTBXL_COLUMNS", "STAMP_FILE", "class_counts", "ham_table", "main",
            "ptbxl_table", "render_lesion", "synthesize_ecg", "write_demo_cohort"
        ],
        "download": [
            "DATAVERSE_SERVER", "HAM10000_DOI", "HAM10000_FILES", "PTBXL_FILES_URL",
            "PTBXL_RELEASES", "PTBXL_VERSION", "PTBXL_ZIP_URL", "ChecksumError", "DownloadError",
            "Transport", "download_file", "download_ham10000", "download_ptbxl", "extract_zip",
            "file_digest", "parse_sha256sums", "ptbxl_urls", "urllib_transport", "verify_sha256sums"
        ],
        "ham10000": [
            "DIAGNOSES", "IMAGE_FOLDERS", "IMAGE_SUFFIXES", "LEAK_COLUMNS", "METADATA_FILE",
            "find_images", "find_metadata_file", "image_resolution", "load_ham_table", "load_image"
        ],
        "manifest": [
            "COLUMNS", "META_PREFIX", "SPLIT_SCHEMES", "ManifestReport", "build_manifest",
            "class_order", "default_manifest_path", "load_manifest", "manifest_for_folder",
            "metadata_columns", "resolve_metadata_columns", "save_manifest", "split_table",
            "validate_manifest"
        ],
        "plots": [
            "metadata_kind", "plot_class_balance", "plot_ecg", "plot_example_images",
            "plot_metadata_by_class", "plot_split_counts"
        ],
        "ptbxl": [
            "AGE_OVER_89_CODE", "AGE_OVER_89_VALUE", "BAD_LEADS_POLICIES", "DATABASE_FILE", "LEADS",
            "SAMPLING_RATES", "STATEMENTS_FILE", "SUPERCLASSES", "SignalFileError",
            "aggregate_superclasses", "apply_bad_leads", "describe_lead_problems", "lead_problems",
            "load_ptbxl_table", "load_scp_statements", "load_signal", "record_path"
        ],
        "splits": [
            "SPLITS", "group_stratified_split", "strat_fold_split", "stratified_split",
            "stratified_subsample"
        ],
    },
)
