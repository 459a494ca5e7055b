"""F(X): ImageNet backbones, augmentation, image datasets, extraction and fine-tuning.

Public names are re-exported here and imported lazily (``lazy_loader``), so that
``import fusion_utils.features`` stays cheap; the modules are ``augment``, ``backbones``,
``datasets``, ``extraction``, ``finetune``, ``plots``, ``resolution``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["augment", "autoencoder", "backbones", "datasets", "domain_similarity",
                "extraction", "finetune", "plots", "resolution"],
    submod_attrs={
        "augment": ["APPLY_TO", "AugmentParams", "PaperAugmentation", "sample_seed"],
        "autoencoder": [
            "MAPS_VERSION", "AEConfig", "ConvAutoEncoder", "FeatureMapCache", "answer",
            "autoencoder_features", "committed_autoencoder", "compare_features", "encode",
            "feature_map_cache_key", "run_real", "summary_table", "train_autoencoder"
        ],
        "backbones": [
            "OFFLINE_BACKBONE", "SELF_SUPERVISED_WEIGHTS", "Backbone", "BackboneSpec",
            "SelfSupervisedWeights", "WeightsUnavailableError", "fold_batchnorm", "get_backbone",
            "list_backbones", "register_backbone"
        ],
        "datasets": [
            "PREPROCESSING_VERSION", "ManifestImageDataset", "default_montage_params",
            "image_source_info", "load_rgb", "montage_params_for", "resize_image"
        ],
        "domain_similarity": [
            "AGGREGATION", "STATISTICS", "BatchNormStatsCollector", "DomainDistance",
            "RunningMoments",
            "batchnorm_layers", "bootstrap_distance", "compare_with_transfer",
            "domain_distance", "exact_permutation_p", "frechet_diagonal", "image_statistics",
            "layer_distances", "load_real", "measure_domain_distance", "noise_floor",
            "plot_distances", "plot_statistics", "real_output_dir", "run_real",
            "statistics_distance", "transfer_differences"
        ],
        "extraction": [
            "FEATURES_VERSION", "FeatureSet", "extract_features", "feature_cache_key",
            "input_fingerprint", "manifest_hash", "precision_context", "run_features",
            "subsample_manifest"
        ],
        "finetune": [
            "OUTPUT_NETWORKS", "PAPER_BATCH_SIZE", "FinetuneOptions", "FinetuneResult",
            "default_num_workers", "finetune", "resolve_device"
        ],
        "plots": ["plot_augmented_views", "plot_feature_pca", "plot_finetune_history"],
        "resolution": [
            "ResolutionComparison", "compare_resolutions", "paired_manifests",
            "predict_with_weights", "summary_by_split"
        ],
    },
)
