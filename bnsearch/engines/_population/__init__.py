"""The population engine: P trials trained at once in one TensorFlow graph.

The thread's network has about 5 k weights; at batch 16 ``model.fit`` spends nearly all its
time in per-step framework overhead. Here every weight carries a leading population axis
(``W[p, in, out]``), the P members' batches are gathered into ``[P, batch, ...]`` and a
whole epoch runs inside one ``tf.function`` loop, so the overhead is paid once for P trials.

The network is a :class:`~bnsearch.networks.LayerGraph` (Dense, Conv2D, BatchNormalization,
activations, Dropout, pooling, Flatten, Add; see :mod:`bnsearch.networks._graph`), the
same for the built-in MLP and CNN families and for a ``--model`` made of those layers; the
engine interprets it op by op and reproduces Keras 3 (TensorFlow backend):

* Kernels come from the layer's own initialiser seeded as the Keras model of the same trial
  seeds it (``layer_seed(seed, kind, k)``), drawn in Keras' shape; a masked bias (the
  rewrite's rule: no bias where a BN follows, unless ``use_bias``) stays unused.
* BatchNormalization in training mode normalises with the batch mean and *biased* variance
  over every axis but the last, ``gamma * (x - mean) / sqrt(var + eps) + beta``, and updates
  ``moving = moving * momentum + batch_stat * (1 - momentum)`` in the forward pass;
  validation uses the moving statistics.
* Members differ in placement by masks. Each site (a Dense/Conv2D followed by a
  non-linearity) has ONE BN slot serving both placements: its input is ``z`` for ``before``
  members and ``act(z)`` for ``after`` members, and the site's output is selected per member
  with ``tf.where`` (``act(BN(z))``, ``BN(act(z))`` or ``act(z)``), so a mixed population
  pays for one BN per site, not two. The input and output BN slots exist only in
  populations with a member that uses them (the compiled graph is keyed by the slots its
  members use). A slot's parameters get zero gradients from members that do not use it and
  are never read for them.
* Conv2D is one ``conv2d`` a member ('same' zero padding as TensorFlow pads, or 'valid';
  any strides), its gradients written as forward convolutions (``_ops.conv2d_members``:
  XLA's CPU compiler emits TensorFlow's gradient convolutions as plain loops inside the
  epoch loop); pooling is TensorFlow's (2×2 max pooling with stride 2 as a reshape and a
  maximum, which XLA compiles to less work than select-and-scatter).
* Inverted dropout: a unit is kept with probability ``1 - rate`` and scaled by
  ``1 / (1 - rate)``. Masks come from a counter-based hash of (member seed, step, unit), so a
  member's randomness does not depend on which other members share its population, and
  members with the same seed (a paired block) share shuffling and dropout masks.
* Loss: for two classes Keras computes ``binary_crossentropy`` on the *pre-softmax logits*
  (sigmoid cross-entropy averaged over the two outputs); for more, softmax cross-entropy.
  Batch losses are averaged over the batch; the epoch ``loss`` and ``accuracy`` (argmax
  agreement) are averages over all training samples of the training-mode passes, weighted by
  batch size, before each update; ``val_*`` use inference mode.
* SGD with Nesterov momentum: ``m = mu*m - lr_t*g; w += mu*m - lr_t*g`` with
  ``lr_t = lr / (1 + decay * t)`` and ``t`` the number of updates made so far.
* Training rows are reshuffled every epoch (per member), the last partial batch is kept, and
  validation rows are the last ones, as in ``model.fit(validation_split=...)``.
* Regression (a dataset with ``task == "regression"``): one linear output, the loss Keras'
  ``mean_squared_error`` and the second metric its ``mae`` (``mae``/``val_mae`` in place of
  the accuracies), averaged as the loss is.

A member whose loss turns NaN/inf is frozen at its last finite weights from that step on and
reported FAILED; a pruned member is frozen and reported PRUNED. Either way it can no longer
affect the others (every member's loss and gradients are computed on its own slice).
"""

from bnsearch.engines._population._engine import (
    MEMORY_LIMIT_BYTES,
    PopulationEngine,
    check_memory,
    estimate_memory_bytes,
)
from bnsearch.engines._population._members import member_model
from bnsearch.engines._population._ops import hash_uniform
from bnsearch.engines._population._population import Population, SlotUse, graph_for

__all__ = [
    "MEMORY_LIMIT_BYTES",
    "Population",
    "PopulationEngine",
    "SlotUse",
    "check_memory",
    "estimate_memory_bytes",
    "graph_for",
    "hash_uniform",
    "member_model",
]
