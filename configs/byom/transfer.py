"""Transfer learning through `model.builder`: a `keras.applications` backbone, frozen, with a new head.

Nothing is downloaded: `weights=None` (random features: the wiring, for tests and CI), or the path
of a weights file you already have (`builder_args: {weights: /data/mobilenet_v2_notop.h5}`), which
Keras loads from disk.

The seed's gotcha, made explicit: the backbone is called with `training=False`. A frozen
BatchNormalization layer already runs in inference mode in Keras 3 (its moving statistics are
used, not the batch's), and `training=False` keeps it so after you unfreeze the backbone to
fine-tune (`train_backbone: true`): fine-tuning with BN in training mode would replace the
pretrained statistics with those of your small batches and wreck the features.
"""

import keras


def build(input_shape, n_outputs, task, dropout=0.2, l2=1e-4, weights=None, train_backbone=False, alpha=0.35):
    if len(input_shape) != 3:
        raise ValueError(f"transfer.build needs images (H, W, C); got input_shape {input_shape}: "
                         f"use an image folder (data.path: images/, data.image_size: [32, 32])")
    backbone = keras.applications.MobileNetV2(input_shape=tuple(input_shape), include_top=False, weights=weights,
                                              alpha=alpha, pooling="avg")
    backbone.trainable = bool(train_backbone)
    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(2.0, offset=-1.0)(inputs)  # regcli's pixels in [0, 1] -> MobileNetV2's [-1, 1]
    x = backbone(x, training=False)  # BatchNormalization in inference mode, frozen or not
    x = keras.layers.Dropout(dropout)(x)
    activation = {"binary": "sigmoid", "multiclass": "softmax"}.get(task)
    outputs = keras.layers.Dense(n_outputs, activation=activation, kernel_regularizer=keras.regularizers.L2(l2))(x)
    return keras.Model(inputs, outputs)
