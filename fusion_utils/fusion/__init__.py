"""H = [F(X), G(M)]: the metadata map G, fusion and the softmax classifier.

Public names are re-exported here and imported lazily (``lazy_loader``), so that
``import fusion_utils.fusion`` stays cheap; the modules are ``classifier_io``, ``metadata``,
``plots``, ``softmax``, ``train``.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["classifier_io", "metadata", "plots", "softmax", "train"],
    submod_attrs={
        "classifier_io": [
            "CLASSIFIER_KEYS", "classifier_from_estimator", "load_classifier", "save_classifier"
        ],
        "metadata": ["DATETIME_PARTS", "ENCODINGS", "MetadataEncoder", "parse_datetime_column"],
        "plots": ["plot_loss_curves"],
        "softmax": ["SoftmaxClassifier", "sklearn_C", "softmax"],
        "train": [
            "TRAININGS", "align_metadata", "check_classifier_inputs", "default_run_dir",
            "feature_matrix", "fuse", "manifest_classes", "metadata_frame", "resolve_run_dir",
            "train_image_and_fused", "training_params", "write_run"
        ],
    },
)
