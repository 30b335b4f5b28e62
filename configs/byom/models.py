"""A model as Keras users write it, for `model.builder: "models.py:build"` (configs/byom/builder.yaml).

regcli imports this file and calls `build` with the knobs it accepts: the spec's `model.l2`
and `model.dropout` (or this function's defaults when the spec leaves them out), the
`model.builder_args` (here `width`), and `input_shape`, `n_outputs`, `task` from the data.
It is your own code: regcli runs it as written.
"""

import keras


@keras.saving.register_keras_serializable(package="byom")
class ResidualDense(keras.layers.Layer):
    """x + Dense(relu)(x): a custom block; registered, so model.keras loads with safe_mode=True."""

    def __init__(self, units, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.l2 = units, l2
        self.dense = keras.layers.Dense(units, activation="relu", kernel_regularizer=keras.regularizers.L2(l2))

    def call(self, x):
        return x + self.dense(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "l2": self.l2}


def build(input_shape, n_outputs, task, l2=1e-4, dropout=0.2, width=64):
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(width, activation="relu", kernel_regularizer=keras.regularizers.L2(l2))(inputs)
    x = ResidualDense(width, l2=l2)(x)
    x = keras.layers.Dropout(dropout)(x)
    activation = {"binary": "sigmoid", "multiclass": "softmax"}.get(task)  # regression: linear
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation=activation)(x))
