"""H = [F(X), G(M)]: the metadata map G, fusion and the softmax classifier.

Public names are re-exported here and imported lazily (``lazy_loader``), so that
``import fusion_utils.fusion`` stays cheap; the modules are ``classifier_io``, ``meta_embedding``,
``metadata``, ``plots``, ``softmax``, ``train``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["classifier_io", "meta_embedding", "metadata", "plots", "softmax", "train"],
    submod_attrs={
        "classifier_io": [
            "CLASSIFIER_KEYS", "classifier_from_estimator", "load_classifier", "save_classifier"
        ],
        "meta_embedding": [
            "DVME", "DVMEClassifier", "DVMEConfig", "MODELS", "MetaEmbeddingResult", "Sources",
            "answer", "attention_by_class", "committed_meta_embedding", "compare_meta_embeddings",
            "load_sources", "main", "resolve_run_dirs", "run_real", "sources_from_feature_sets",
            "summary_table"
        ],
        "metadata": ["DATETIME_PARTS", "ENCODINGS", "MetadataEncoder", "parse_datetime_column"],
        "plots": ["plot_attention_by_class", "plot_loss_curves"],
        "softmax": ["SoftmaxClassifier", "sklearn_C", "softmax"],
        "train": [
            "TRAININGS", "align_metadata", "check_classifier_inputs", "default_run_dir",
            "feature_matrix", "fuse", "manifest_classes", "metadata_frame", "resolve_run_dir",
            "train_image_and_fused", "training_params", "write_run"
        ],
    },
)
