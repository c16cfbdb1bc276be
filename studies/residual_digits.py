"""A small pre-activation residual network on the digits images (8×8×1), given as it is
(``--model``): the thread's question asked inside He et al.'s residual unit.

He et al. 2016, "Identity Mappings in Deep Residual Networks", move BN and ReLU in front of
each convolution of the residual branch ("full pre-activation": BN → ReLU → conv → BN →
ReLU → conv, then the addition, with nothing after it on the identity path) and report
6.37 % CIFAR-10 error on ResNet-110 against 6.61 % for the original unit (conv → BN → ReLU
… addition → ReLU). This network is written in that pre-activation shape, without any
BatchNormalization: a stem convolution, two residual units whose branch is
ReLU → conv → ReLU → conv added to the unit's input, then ReLU, global average pooling and
the softmax output.

bnsearch's rule (README, "Your own Keras model") makes the first convolution of each branch
a *site* (its output goes through a ReLU that is its only consumer); the second feeds the
addition and the unit-leading ReLUs read the identity path too, so they are not. Per trial:

* ``before``: … conv → BN → ReLU → conv → add: the order inside He et al.'s branch (both of
  their units place BN before the ReLU);
* ``after``: … conv → ReLU → BN → conv → add;
* ``none``: no BN at all.

So the study answers the thread's two questions inside a pre-activation residual network:
does BN help it at all at this size, and should BN come before or after the ReLU between
the branch's two convolutions. It does not compare the original unit with the
pre-activation one (that moves the addition, a different graph: give each as its own
``--model``). Every layer here (Conv2D, activations, Add, GlobalAveragePooling2D, Dense) has
a form in the population engine's layer graph, so it trains there, as the built-in CNN does.
"""

import keras
from keras import layers


def build() -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    x = layers.Conv2D(16, 3, padding="same", name="stem")(inputs)
    for unit in (1, 2):
        y = layers.Activation("relu", name=f"unit{unit}_pre_relu")(x)
        y = layers.Conv2D(16, 3, padding="same", name=f"unit{unit}_conv1")(y)
        y = layers.Activation("relu", name=f"unit{unit}_relu")(y)
        y = layers.Conv2D(16, 3, padding="same", name=f"unit{unit}_conv2")(y)
        x = layers.Add(name=f"unit{unit}_add")([x, y])
    x = layers.Activation("relu", name="final_relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name="preact_resnet_digits")
