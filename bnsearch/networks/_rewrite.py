"""Your own Keras model (``--model``), rewritten into each trial's placement by one rule
(the docs, *Your model*, "The rewrite rule"): ``keras.models.clone_model`` with a
``call_function`` per layer call; a Sequential goes through its functional view."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import runpy
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from bnsearch.errors import ConfigError, error_line
from bnsearch.networks._common import bn_layer, cwd_importable, hidden_layer_order, import_or_refuse
from bnsearch.trial import BNConfig, layer_seed

_ACTIVATION_LAYERS = ("Activation", "ReLU", "ELU", "LeakyReLU", "Softmax", "PReLU")
#: The linear layers a BN can follow (a site where a non-linearity follows one).
CORE_CLASSES = (
    "Dense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
)  # fmt: skip
#: A conv into one of these that only feeds a Multiply is a gate (squeeze-and-excitation).
_GATES = ("sigmoid", "hard_sigmoid")
#: Kept as they are and not named as unknown (they hold no decision about BN).
_STRUCTURAL = (
    "Flatten", "Reshape", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
    "GlobalMaxPooling2D", "Add", "Concatenate", "Multiply", "Average", "Subtract",
    "ZeroPadding2D", "Cropping2D", "Identity", "Permute", "GlobalAveragePooling1D",
    "GlobalMaxPooling1D", "MaxPooling1D", "AveragePooling1D",
)  # fmt: skip
#: Each class's role before the graph is read ("kept": one bnsearch cannot reason about).
_ROLE_OF = {
    **dict.fromkeys((*_STRUCTURAL, *_ACTIVATION_LAYERS, "InputLayer"), "structural"),
    **dict.fromkeys(CORE_CLASSES, "core"),
    "Dropout": "dropout",
    "BatchNormalization": "kept_bn",
}


@dataclass(frozen=True)
class Node:
    """One layer call in the graph's order: the calls it takes (``-1``: the input) and its role."""

    index: int
    layer: Any
    inputs: tuple[int, ...]
    role: str = "kept"

    @property
    def name(self) -> str:
        return str(self.layer.name)

    @property
    def cls(self) -> str:
        return type(self.layer).__name__

    @property
    def config(self) -> dict[str, Any]:
        return self.layer.get_config()


@dataclass(frozen=True)
class Site:
    """A site's activation (its call, if a layer) and the BN calls at it (removed)."""

    activation_node: int | None
    activation: str
    removed_bns: tuple[int, ...]


@dataclass(frozen=True)
class ModelPlan:
    """A ``--model`` network read once: its layer calls, sites and output."""

    spec: str
    source: Any  # the model as loaded (functional view)
    nodes: tuple[Node, ...]
    sites: dict[int, Site]
    output: int
    output_activation: str  # "linear" if none
    output_activation_node: int | None
    output_bn: int | None
    input_shape: tuple[int | None, ...]
    output_width: int
    optimizer: dict[str, Any] | None  # the model's compiled optimizer, serialized
    kept: tuple[str, ...] = ()  # "Class 'name'" of layers bnsearch cannot reason about
    #: Pre-activation (Add or input → BN → activation): activation call → its BN's call.
    preacts: dict[int, int] = field(default_factory=dict)
    #: Plain cores whose only consumer is a kept BN (they get a bias back in ``none``).
    feeding_kept_bn: frozenset[int] = frozenset()
    flatten_first: int | None = None  # a Flatten taking the input first (input BN after it)

    @property
    def site_names(self) -> list[str]:
        return [self.nodes[i].name for i in self.sites]

    @cached_property
    def seeds(self) -> dict[int, tuple[str, int]]:
        """Each core's ``(kind, k)`` seed key (the k-th ``dense``, ``conv`` (Conv2D) or
        ``other``) and each Dropout's ``("dropout", Dense layers before it)``."""
        seeds: dict[int, tuple[str, int]] = {}
        seen: Counter[str] = Counter()
        for node in self.nodes:
            if node.cls in CORE_CLASSES:
                kind = {"Dense": "dense", "Conv2D": "conv"}.get(node.cls, "other")
                seeds[node.index] = (kind, seen[kind])
                seen[kind] += 1
            elif node.cls == "Dropout":
                seeds[node.index] = ("dropout", seen["dense"])
        return seeds


# --- loading ----------------------------------------------------------------------------


def _source_path(spec: str) -> Path | None:
    """The ``.keras`` file, ``.py`` file or module source behind ``spec`` (not imported)."""
    target = spec if spec.endswith(".keras") else spec.rpartition(":")[0]
    if target.endswith((".keras", ".py")):
        return Path(target)
    cwd_importable()
    try:
        found = importlib.util.find_spec(target)
    except (ImportError, ValueError):
        return None
    return Path(found.origin) if found and found.origin and found.has_location else None


def model_digest(spec: str) -> str:
    """SHA-256 (16 hex digits) of the file behind ``spec`` ("" if none): part of the
    network's fingerprint, so editing the model makes the study "changed"."""
    path = _source_path(spec)
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path and path.is_file() else ""


def load_plan(spec: str) -> ModelPlan:
    """``spec`` loaded and read, again once its file changed (by one ``stat``, cheap enough
    for every trial's build); a one-line ConfigError if it cannot be used."""
    path = _source_path(spec)
    status = path.stat() if path is not None and path.is_file() else None
    return _load_plan(spec, (status.st_mtime_ns, status.st_size) if status else None)


@lru_cache(maxsize=8)
def _load_plan(spec: str, stamp: tuple[int, int] | None) -> ModelPlan:
    model, optimizer = _load_file(Path(spec)) if spec.endswith(".keras") else _load(spec)
    return _read(spec, _functional(spec, model), optimizer)


def plan_of_model(spec: str, model: Any, need_site: bool = True) -> ModelPlan:
    """A Keras model built in this process read by the ``--model`` rule (``spec`` names it
    in errors); ``need_site=False`` also reads a model without a site."""
    return _read(spec, _functional(spec, model), None, need_site)


def _load(spec: str) -> tuple[Any, dict[str, Any] | None]:
    """The model ``module:name`` or ``file.py:name`` names, and its compiled optimizer."""
    import keras

    target, _, name = spec.rpartition(":")
    if target.endswith(".py"):
        if not Path(target).is_file():
            raise ConfigError(f"--model {spec}: {target} does not exist; check the path.")
        try:
            members = runpy.run_path(target, run_name=f"bnsearch_model_{Path(target).stem}")
        except Exception as error:  # noqa: BLE001 - the user's code: its failure in one line
            what = error_line(error)
            raise ConfigError(f"--model {spec}: importing {target} failed ({what}).") from None
    else:
        members = vars(import_or_refuse(target, f"the model module {target!r} for --model {spec}"))
    found = members.get(name)
    if found is None:
        raise ConfigError(f"{target} has no {name!r} (--model {spec}).")
    if not isinstance(found, keras.Model):
        if not callable(found):
            raise ConfigError(
                f"{spec} is a {type(found).__name__}, not a Keras model or a function that "
                "returns one."
            )
        try:
            found = found()
        except Exception as error:  # noqa: BLE001 - the user's code: its failure in one line
            raise ConfigError(
                f"calling {spec}() to build the model failed ({error_line(error)}); it must "
                "take no arguments and return a Keras model."
            ) from None
        if not isinstance(found, keras.Model):
            raise ConfigError(f"{spec}() returned {type(found).__name__}, not a Keras model.")
    optimizer = getattr(found, "optimizer", None) if found.compiled else None
    return found, keras.optimizers.serialize(optimizer) if optimizer is not None else None


def _entries(item: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every serialized object in a saved model's config, named ``Class 'name'``."""
    if isinstance(item, dict) and isinstance(item.get("class_name"), str):
        inner = item.get("config")
        name = inner.get("name") if isinstance(inner, dict) else None
        yield (f"{item['class_name']} {name!r}" if name else item["class_name"]), item
    if isinstance(item, (dict, list)):
        for value in item.values() if isinstance(item, dict) else item:
            yield from _entries(value)


def _load_file(path: Path) -> tuple[Any, dict[str, Any] | None]:
    import keras

    if not path.is_file():
        raise ConfigError(f"--model {path} does not exist; check the path.")
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        config = {}
    if not config:
        raise ConfigError(f"--model {path} is not a Keras model file (a .keras archive).")
    entries = list(_entries(config.get("config", {})))
    if lambdas := [name for name, entry in entries if entry["class_name"] == "Lambda"]:
        raise ConfigError(
            f"--model {path} holds {', '.join(lambdas)}: a Lambda layer is Python code, "
            "which Keras' safe_mode refuses to load from a file (it could run anything); "
            "write the model in a module and give --model module:name."
        )
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - Keras' errors: a class it does not know
        internal = ("__keras_tensor__", "__tuple__", "__numpy__")
        custom = {
            name
            for name, entry in entries
            if "module" in entry and not str(entry["module"]).startswith("keras")
            if entry["class_name"] not in internal
        }
        if custom:
            raise ConfigError(
                f"--model {path} needs custom classes Keras cannot load from the file alone: "
                f"{', '.join(sorted(custom))}; give --model module:name, a function that imports "
                "them and returns the model (e.g. keras.models.load_model(path, "
                "custom_objects=...))."
            ) from None
        raise ConfigError(f"--model {path} cannot be loaded ({error_line(error)[:300]}).") from None
    optimizer = (config.get("compile_config") or {}).get("optimizer")
    return model, optimizer if isinstance(optimizer, dict) else None


def _functional(spec: str, model: Any) -> Any:
    """The model as a functional graph (a Sequential's functional view); refused if none."""
    import keras
    from keras.src.models.functional import Functional

    if isinstance(model, keras.Sequential):
        try:
            inputs, outputs = model.inputs, model.outputs
        except (AttributeError, ValueError):
            inputs = outputs = None
        if not inputs:
            raise ConfigError(
                f"the Sequential model of --model {spec} has no input shape; start it with "
                "keras.Input(shape=...) (or give its first layer input_shape)."
            )
        return keras.Model(inputs, outputs, name=model.name)
    if not isinstance(model, Functional):
        raise ConfigError(
            f"--model {spec} is a subclassed Keras model ({type(model).__name__}): it has no "
            "layer graph to rewrite; build it as a Sequential or functional model."
        )
    return model


# --- reading the graph ------------------------------------------------------------------


def activation_text(node: Node) -> str:
    """The non-linearity of an activation layer call ("linear" if it has none)."""
    config = node.config
    if node.cls == "ReLU":
        settings = {k: config.get(k) for k in ("max_value", "negative_slope", "threshold")}
        plain = settings["max_value"] is None and not settings["negative_slope"]
        if plain and not settings["threshold"]:
            return "relu"
        return "relu(" + ",".join(f"{k}={v}" for k, v in settings.items()) + ")"
    if node.cls == "LeakyReLU":  # the layer's slope (0.3 by default; the function's is 0.2)
        return f"relu(max_value=None,negative_slope={config.get('negative_slope')},threshold=0.0)"
    if node.cls == "ELU":
        return "elu" if float(config.get("alpha", 1.0)) == 1.0 else "ELU(custom)"
    if node.cls in ("Softmax", "PReLU"):
        return node.cls.lower()
    return fused_activation(config) if node.cls == "Activation" else "linear"


def fused_activation(config: dict[str, Any]) -> str:
    """A Dense/Conv2D config's fused activation as text ("linear" if none)."""
    value = config.get("activation", "linear") or "linear"
    return value if isinstance(value, str) else str(value.get("class_name"))


def _is_activation(node: Node) -> bool:
    return node.cls in _ACTIVATION_LAYERS and activation_text(node) != "linear"


def _trace(spec: str, model: Any) -> tuple[list[Node], int]:
    """Every layer call of ``model`` in the graph's order (``clone_model`` with the model's
    own layers: the tensors tell which call feeds which), and the output's call."""
    import keras

    inputs = [keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype) for t in model.inputs]
    produced = {id(tensor): -1 for tensor in inputs}
    alive: list[Any] = []  # keeps the tensors (and so their ids) alive while tracing
    nodes: list[Node] = []

    def record(layer: Any, *args: Any, **kwargs: Any) -> Any:
        out = layer(*args, **kwargs)
        given = [t for t in keras.tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor)]
        outs = keras.tree.flatten(out)
        nodes.append(Node(len(nodes), layer, tuple(produced.get(id(t), -1) for t in given)))
        produced.update(dict.fromkeys(map(id, outs), len(nodes) - 1))
        alive.extend(given + outs)
        return out

    clone = _clone(model, inputs[0], record)
    calls = Counter(id(node.layer) for node in nodes)
    if shared := [node.name for node in nodes if calls[id(node.layer)] > 1]:
        raise ConfigError(
            f"--model {spec}: layer {shared[0]!r} is called more than once (a shared "
            "layer); its calls could need different placements, so bnsearch cannot "
            "rewrite it; give each call its own layer."
        )
    return nodes, produced[id(clone.outputs[0])]


def _clone(model: Any, tensor: Any, call: Callable[..., Any]) -> Any:
    """``model`` (one input) called on ``tensor`` through ``call(layer, *args, **kwargs)``,
    layer call by layer call, with its own layers."""
    import keras

    return keras.models.clone_model(
        model,
        input_tensors=[tensor] if isinstance(model.input, (list, tuple)) else tensor,
        clone_function=lambda layer: layer,
        call_function=call,
    )


def _read(
    spec: str, model: Any, optimizer: dict[str, Any] | None, need_site: bool = True
) -> ModelPlan:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConfigError(
            f"--model {spec} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            "bnsearch trains models with one input (the data's rows) and one output."
        )
    nodes, last = _trace(spec, model)
    graph = _Graph(nodes)
    roles = {node.index: _ROLE_OF.get(node.cls, "kept") for node in nodes}
    output, output_activation, activation_node, output_bn = _output(spec, nodes, last)
    roles[output] = "output"
    if activation_node is not None:
        roles[activation_node] = "output_activation"
    if output_bn is not None:
        roles[output_bn] = "removed_bn"
    cores = [node for node in nodes if node.cls in CORE_CLASSES and node.index != output]
    sites = {node.index: site for node in cores if (site := graph.site(node)) is not None}
    for index, site in sites.items():
        roles[index] = "site"
        if site.activation_node is not None:
            roles[site.activation_node] = "site_activation"
        roles.update({index: "removed_bn" for index in site.removed_bns})
    preacts = graph.preactivations(roles)
    if not sites and not preacts and need_site:
        raise ConfigError(
            f"--model {spec} has no site for BatchNormalization: no Dense or Conv2D layer "
            "besides the output layer goes through a non-linearity (a fused activation= or "
            "an activation layer after it)."
        )
    first = graph.only(-1)
    final = tuple(Node(node.index, node.layer, node.inputs, roles[node.index]) for node in nodes)
    width = model.outputs[0].shape[-1]
    return ModelPlan(
        spec=spec,
        source=model,
        nodes=final,
        sites=sites,
        output=output,
        output_activation=output_activation,
        output_activation_node=activation_node,
        output_bn=output_bn,
        input_shape=tuple(model.inputs[0].shape[1:]),
        output_width=int(width) if width is not None else 0,
        optimizer=optimizer,
        kept=tuple(f"{n.cls} {n.name!r}" for n in final if n.role == "kept"),
        preacts=preacts,
        feeding_kept_bn=graph.feeding_kept_bn(roles),
        flatten_first=first.index if first is not None and first.cls == "Flatten" else None,
    )


class _Graph:
    """Who consumes each call's output, and the site rule on top of it."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self.consumers: dict[int, list[int]] = {i: [] for i in range(-1, len(nodes))}
        for node in nodes:
            for source in node.inputs:
                self.consumers[source].append(node.index)

    def only(self, index: int) -> Node | None:
        """The one call that consumes call ``index``'s output (None if not exactly one)."""
        found = self.consumers[index]
        return self.nodes[found[0]] if len(found) == 1 else None

    def preactivations(self, roles: dict[int, str]) -> dict[int, int]:
        """Each kept BN → activation no core feeds: activation call → BN call (roles set)."""
        preacts: dict[int, int] = {}
        for node in self.nodes:
            act = self.only(node.index) if roles[node.index] == "kept_bn" else None
            if act is not None and _is_activation(act) and roles[act.index] == "structural":
                preacts[act.index] = node.index
                roles[node.index], roles[act.index] = "preact_bn", "preact_activation"
        return preacts

    def feeding_kept_bn(self, roles: dict[int, str]) -> frozenset[int]:
        """The plain cores whose only consumer is a BN the model keeps."""
        return frozenset(
            node.index
            for node in self.nodes
            if roles[node.index] == "core"
            and (after := self.only(node.index)) is not None
            and roles[after.index] == "kept_bn"
        )

    def in_gate(self, end: Node, activation: str) -> bool:
        """Whether ``end``'s output only gates another tensor: a sigmoid into Multiply, or
        (squeeze-and-excitation's reducing conv) only into such a gate's core."""
        consumers = [self.nodes[i] for i in self.consumers[end.index]]
        gate = (lambda c: c.cls == "Multiply") if activation in _GATES else self._is_gate_core
        return bool(consumers) and all(map(gate, consumers))

    def _is_gate_core(self, node: Node) -> bool:
        if node.cls not in CORE_CLASSES:
            return False
        activation, end = fused_activation(node.config), node
        nxt = self.only(node.index) if activation == "linear" else None
        if nxt is not None and _is_activation(nxt):
            activation, end = activation_text(nxt), nxt
        return activation in _GATES and self.in_gate(end, activation)

    def site(self, node: Node) -> Site | None:
        """``node`` (a core) as a site; None if no non-linearity follows it."""
        activation, act_node, removed = fused_activation(node.config), None, []
        if activation == "linear":
            nxt = self.only(node.index)
            if nxt is not None and nxt.cls == "BatchNormalization":
                removed.append(nxt.index)
                nxt = self.only(nxt.index)
            if nxt is None or not _is_activation(nxt):
                return None
            act_node, activation = nxt, activation_text(nxt)
        end = act_node or node
        if self.in_gate(end, activation):
            return None  # a gate scales another tensor: BN inside it is not the question
        following = self.only(end.index)
        if following is not None and following.cls == "BatchNormalization":
            removed.append(following.index)
        return Site(act_node.index if act_node else None, activation, tuple(removed))


def _output(spec: str, nodes: list[Node], last: int) -> tuple[int, str, int | None, int | None]:
    """The output layer's call, its activation, its activation layer's call and a BN between."""

    def before(node: Node | None) -> Node | None:
        return nodes[node.inputs[0]] if node and node.inputs and node.inputs[0] >= 0 else None

    node = nodes[last] if last >= 0 else None
    activation_node = output_bn = None
    if node is not None and node.cls in _ACTIVATION_LAYERS:
        activation_node, node = node, before(node)
        if node is not None and node.cls == "BatchNormalization":
            output_bn, node = node.index, before(node)
    if node is None or node.cls not in CORE_CLASSES:
        what = f"{node.cls} {node.name!r}" if node is not None else "its input"
        raise ConfigError(
            f"--model {spec}: the output comes from {what}, not from a Dense or Conv2D "
            "layer; end the model in its output layer (e.g. Dense(n_classes, "
            "activation='softmax'))."
        )
    if activation_node is None:
        return node.index, fused_activation(node.config), None, output_bn
    return node.index, activation_text(activation_node), activation_node.index, output_bn


def check_model_fits(plan: ModelPlan, input_shape: tuple[int, ...], n_classes: int) -> None:
    """Refuse a model whose input or output does not suit the data (1 class: regression)."""
    expected, given = plan.input_shape, tuple(int(n) for n in input_shape)
    pairs = zip(expected, given, strict=False)
    if len(expected) != len(given) or not all(e in (None, g) for e, g in pairs):
        raise ConfigError(
            f"--model {plan.spec} takes rows of shape {expected}, but the data's rows have "
            f"shape {given}; give the model keras.Input(shape={given})."
        )
    output, width, activation = plan.nodes[plan.output], plan.output_width, plan.output_activation
    ends = f"--model {plan.spec} ends in {output.cls} {output.name!r} with {width} units and "
    if n_classes == 1 and (width != 1 or activation == "softmax"):
        raise ConfigError(
            f"{ends}activation {activation}; a regression needs one output unit without "
            "softmax (Dense(1))."
        )
    if n_classes != 1 and (width != n_classes or activation != "softmax"):
        raise ConfigError(
            f"{ends}activation {activation}; the data has {n_classes} classes, so it must end "
            f"in Dense({n_classes}) with a softmax (or set --task regression for a real-valued "
            "target)."
        )


# --- rewriting --------------------------------------------------------------------------


def with_seed(value: Any, seed: int) -> Any:
    """A serialized initialiser (or its name), serialized, with ``seed`` where it takes one."""
    import keras

    if isinstance(value, str):
        value = keras.initializers.serialize(keras.initializers.get(value))
    config = value.get("config") if isinstance(value, dict) else None
    if isinstance(config, dict) and "seed" in config:
        value = {**value, "config": {**config, "seed": seed}}
    return value


def rewrite_model(plan: ModelPlan, config: BNConfig, seed: int) -> Any:
    """A fresh, uncompiled Keras model of ``plan`` under ``config``, seeded from ``seed``."""
    import keras

    rewrite = _Rewrite(plan, config, seed)
    model = _clone(plan.source, rewrite.inputs, rewrite.call)
    return keras.Model(model.inputs, model.outputs, name=f"{plan.source.name}_{config.placement}")


class _Rewrite:
    """One rewrite: ``clone_model`` calls :meth:`call` per layer call, in the traced order."""

    def __init__(self, plan: ModelPlan, config: BNConfig, seed: int) -> None:
        import keras

        self.plan, self.config, self.seed = plan, config, seed
        self.order = hidden_layer_order(config.placement)
        self.names = {node.name for node in plan.nodes}
        self.calls = 0
        self.inputs = keras.Input(batch_shape=(None, *plan.input_shape), name="features")
        self.input = self.inputs  # what the model's layers take instead: the input BN's output
        if config.placement == "input" and plan.flatten_first is None:
            self.input = self.bn("input_bn")(self.inputs)

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    def bn(self, name: str) -> Any:
        return bn_layer(self.config, self.fresh(name))

    def core(self, node: Node, use_bias: bool, activation: str | None) -> Any:
        """The Dense/Conv2D of ``node``, its initialisers seeded from the trial's seed."""
        layer_config = copy.deepcopy(node.config)
        kind, k = self.plan.seeds[node.index]
        for key in [key for key in layer_config if key.endswith("_initializer")]:  # kernel, bias...
            layer_config[key] = with_seed(layer_config[key], layer_seed(self.seed, kind, k))
        layer_config["use_bias"] = use_bias
        if activation is not None:
            layer_config["activation"] = activation
        return type(node.layer).from_config(layer_config)

    def activation_layer(self, own: Node | None, name: str, activation: str) -> Any:
        """``own`` afresh, else ``Activation(activation)``; a searched activation wins."""
        import keras

        if own is not None and not self.config.activation:
            return type(own.layer).from_config(own.config)
        name = own.name if own is not None else self.fresh(name)
        return keras.layers.Activation(self.config.activation or activation, name=name)

    def steps(self, x: Any, bn: Callable[[], Any], activation: Any) -> Any:
        """``x`` through the placement's BN and the activation, in the placement's order."""
        for step in self.order[1:]:
            x = (bn() if step == "bn" else activation)(x)
        return x

    def call(self, layer: Any, *args: Any, **kwargs: Any) -> Any:
        import keras

        node, plan, config = self.plan.nodes[self.calls], self.plan, self.config
        self.calls += 1
        if node.name != layer.name:  # the same graph, traced in the same order
            raise RuntimeError(f"rewrite out of step at {node.name!r} / {layer.name!r}")
        args, kwargs = keras.tree.map_structure(
            lambda t: self.input if t is self.inputs else t, (args, kwargs)
        )
        if node.role in ("removed_bn", "site_activation", "preact_bn"):
            return args[0]
        if node.role == "preact_activation":  # its BN before or after the activation, or none
            bn_name = plan.nodes[plan.preacts[node.index]].name
            activation = self.activation_layer(node, node.name, "")
            return self.steps(args[0], lambda: bn_layer(config, bn_name), activation)
        if node.role in ("site", "output"):
            return self.placed(node, args[0])
        layer_config = dict(node.config)
        if node.role == "dropout":
            layer_config["rate"] = config.dropout
            layer_config["seed"] = layer_seed(self.seed, "dropout", plan.seeds[node.index][1])
        elif node.role == "kept_bn":
            if config.placement == "none":  # "without BN" holds no BN at all
                return args[0]
            layer_config.update(momentum=config.momentum, epsilon=config.epsilon)
        if node.role == "core":
            feeds_bn = node.index in plan.feeding_kept_bn and config.placement != "none"
            out = self.core(node, config.use_bias or not feeds_bn, None)(*args, **kwargs)
        else:
            layer = type(node.layer).from_config(layer_config)
            out = layer(*args, **kwargs)
            if node.cls == "Normalization":  # preprocessing fitted to data: its statistics stay
                layer.set_weights(node.layer.get_weights())
        if config.placement == "input" and node.index == plan.flatten_first:
            out = self.bn("input_bn")(out)
        return out

    def placed(self, node: Node, x: Any) -> Any:
        """A site, or the output layer (a BN before its activation for ``before_output``)."""
        import keras

        plan, config = self.plan, self.config
        if node.role == "site":
            site = plan.sites[node.index]
            feeds_bn = self.order[1:2] == ("bn",)
            z = self.core(node, config.use_bias or not feeds_bn, "linear")(x)
            own = plan.nodes[site.activation_node] if site.activation_node is not None else None
            activation = self.activation_layer(own, f"{node.name}_act", site.activation)
            return self.steps(z, lambda: self.bn(f"{node.name}_bn"), activation)
        if config.placement != "before_output":
            return self.core(node, True, None)(x)
        fused = plan.output_activation_node is None
        z = self.core(node, config.use_bias, "linear" if fused else None)(x)
        z = self.bn(f"{node.name}_bn")(z)
        if fused and plan.output_activation != "linear":
            act_name = self.fresh(f"{node.name}_act")  # the output's own, never the searched
            z = keras.layers.Activation(plan.output_activation, name=act_name)(z)
        return z


def layer_text(layer: Any) -> str:
    """One layer as ``python -m bnsearch model --show`` prints it."""
    name = type(layer).__name__
    config = layer.get_config()
    parts: list[str] = []
    if name in CORE_CLASSES:
        parts.append(str(config.get("units", config.get("filters"))))
        if name == "Conv2D":
            parts.append("x".join(map(str, config["kernel_size"])))
            parts.append(f"padding={config.get('padding')}")
        if fused_activation(config) != "linear":
            parts.append(f"activation={fused_activation(config)}")
        if not config.get("use_bias", True):
            parts.append("no bias")
        initial = config.get("kernel_initializer") or {}
        parts.append(f"init={initial.get('class_name', initial)}")
    elif name == "BatchNormalization":
        parts.append(f"momentum={config['momentum']:g}, epsilon={config['epsilon']:g}")
    elif name == "Dropout":
        parts.append(f"rate={config['rate']:g}")
    elif name == "Activation":
        parts.append(str(config.get("activation")))
    elif name == "InputLayer":
        parts.append(f"shape={tuple(config.get('batch_shape', (None,))[1:])}")
    return f"{name}({', '.join(parts)})" if parts else name
