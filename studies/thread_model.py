"""The question's own model in plain Keras 3, given to bnsearch as it is (``--model``).

The thread's Keras 1 code, ``Dense(64, input_dim=14, init='uniform')`` → tanh → Dropout(0.5)
→ Dense(64) → tanh → Dropout(0.5) → Dense(2) → softmax, written for Keras 3: ``input_dim=14``
is ``keras.Input((14,))`` (``Dense(64, input_dim=14)`` still works, with a warning), and the
kernels keep Keras' default Glorot-uniform initialiser, as bnsearch's built-in network does
(the thread's ``init='uniform'`` would be ``kernel_initializer=RandomUniform(-0.05, 0.05)``,
the built-in ``initializer = "uniform"``). No BatchNormalization here: bnsearch places it
per trial (``python -m bnsearch model --show studies/thread_model.py:build`` prints where).
"""

import keras
from keras import layers


def build() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((14,)),
            layers.Dense(64),
            layers.Activation("tanh"),
            layers.Dropout(0.5),
            layers.Dense(64),
            layers.Activation("tanh"),
            layers.Dropout(0.5),
            layers.Dense(2),
            layers.Activation("softmax"),
        ],
        name="thread",
    )
