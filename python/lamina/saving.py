"""Saving and loading models and weights: one safetensors file, validated before use.

File format (``model.save('m.lamina')`` and ``save_weights('w.safetensors')``): a plain
safetensors file, readable by any safetensors reader:

* 8 bytes: little-endian u64 N, the length of the JSON header;
* N bytes: a UTF-8 JSON object (padded with spaces to a multiple of 8) mapping each weight
  name to ``{"dtype", "shape", "data_offsets": [begin, end]}``, plus ``"__metadata__"``, a
  map of strings to strings;
* the raw little-endian tensor data, offsets relative to its start.

Weights are named by layer path from the model: ``dense/kernel``, ``block/dense_1/bias``.
The metadata holds:

* ``format``: ``lamina.model`` or ``lamina.weights``; ``format_version``: ``1``;
* ``model_config``: JSON ``{"class_name", "config"}`` of the architecture (models only);
* ``compile_config``: JSON of the optimizer, loss and metrics given to ``compile``;
* ``sha256``: hex digest of the canonical JSON of the header (without this entry) followed
  by the data, so that any bit flip, in the header or in the weights, is detected.

Reading never executes code from the file: the architecture is rebuilt only from layer
classes that Lamina defines or that were registered with ``register_serializable`` or given
in ``custom_objects``. Every structural property is checked (header size cap, well-formed
JSON without duplicate keys, known dtypes, non-negative shapes, in-bounds offsets that
cover the data exactly without overlap, sizes matching shapes) and a damaged file raises
ValueError with the reason. Files are written atomically: to a temporary file in the same
folder, flushed and fsynced, then renamed over the target, so a failed save leaves the old
file as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
import threading
import warnings

import numpy as np

import lamina

FORMAT_VERSION = "1"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the limit the reference safetensors reader uses

# safetensors dtype code -> (numpy dtype, bytes per element). BF16 is read into float32.
_DTYPES = {
    "F64": (np.dtype("<f8"), 8), "F32": (np.dtype("<f4"), 4), "F16": (np.dtype("<f2"), 2),
    "BF16": (np.dtype("<u2"), 2), "I64": (np.dtype("<i8"), 8), "I32": (np.dtype("<i4"), 4),
    "I16": (np.dtype("<i2"), 2), "I8": (np.dtype("i1"), 1), "U8": (np.dtype("u1"), 1),
    "U16": (np.dtype("<u2"), 2), "U32": (np.dtype("<u4"), 4), "U64": (np.dtype("<u8"), 8),
    "BOOL": (np.dtype("bool"), 1),
}
_CODES = {np.dtype(v[0]).newbyteorder("="): k for k, v in _DTYPES.items() if k not in ("BF16",)}


# ----- registry of user classes and functions -----------------------------------------------
_REGISTERED: dict = {}
_scope = threading.local()


def register_serializable(package="Custom", name=None):
    """Decorator registering a class or function so that saved models can refer to it.

    Args:
        package: Prefix that keeps names from different libraries apart.
        name: Name to register under (default: the object's ``__name__``).

    Example:
        >>> @lamina.saving.register_serializable(package="my_lib")
        ... class Scale(lamina.layers.Layer): ...
    """

    def decorator(obj):
        key = f"{package}>{name or obj.__name__}"
        if key in _REGISTERED and _REGISTERED[key] is not obj:
            raise ValueError(f"register_serializable: '{key}' is already registered to another object")
        _REGISTERED[key] = obj
        return obj

    return decorator


@contextlib.contextmanager
def custom_object_scope(custom_objects):
    """Within the block, names in `custom_objects` resolve to the given classes/functions."""
    stack = _scope.__dict__.setdefault("stack", [])
    stack.append(dict(custom_objects or {}))
    try:
        yield
    finally:
        stack.pop()


def get_registered_name(obj):
    """The registered 'package>name' of `obj`, or None."""
    for key, value in _REGISTERED.items():
        if value is obj:
            return key
    return None


def get_registered_object(name, custom_objects=None):
    """The object registered (or in scope / in `custom_objects`) under `name`, or None."""
    for mapping in [custom_objects or {}] + list(reversed(getattr(_scope, "stack", []))):
        if name in mapping:
            return mapping[name]
    if name in _REGISTERED:
        return _REGISTERED[name]
    short = [v for k, v in _REGISTERED.items() if k.split(">", 1)[1] == name]
    return short[0] if len(short) == 1 else None


def lookup_class(name, builtins, custom_objects=None, kind="object"):
    """Resolves `name` among `builtins`, custom objects and registered objects.

    Raises:
        ValueError: when the name is unknown; nothing is imported or executed for it.
    """
    if not isinstance(name, str):
        raise ValueError(f"Invalid {kind} class name {name!r} in config")
    obj = get_registered_object(name, custom_objects)
    if obj is None:
        obj = builtins.get(name)
    if obj is None:
        raise ValueError(f"Unknown {kind} '{name}'. Register it with lamina.saving.register_serializable() or "
                         f"pass it in custom_objects={{'{name}': ...}}")
    return obj


def _layer_classes():
    from lamina import layers, models

    out = {n: c for n, c in vars(layers).items() if isinstance(c, type) and issubclass(c, layers.Layer)}
    out.update({"Sequential": models.Sequential, "Functional": models.Functional, "Model": models.Functional})
    return out


def serialize_layer(layer):
    """``{"class_name", "config"}`` for a layer or model; checks that the config is JSON."""
    name = get_registered_name(type(layer)) or type(layer).__name__
    try:
        config = layer.get_config()
    except NotImplementedError as e:
        raise NotImplementedError(f"Cannot save layer '{layer.name}' ({type(layer).__name__}): {e}") from e
    try:
        json.dumps(config)
    except (TypeError, ValueError) as e:
        raise TypeError(f"Layer '{layer.name}' ({type(layer).__name__}): get_config() must return JSON-serializable "
                        f"values ({e})") from e
    return {"class_name": name, "config": config}


def deserialize_layer(spec, custom_objects=None):
    """A new layer (or model) from ``serialize_layer`` output."""
    if not isinstance(spec, dict) or "class_name" not in spec or not isinstance(spec.get("config", {}), dict):
        raise ValueError(f"Invalid layer spec in config: {str(spec)[:200]}")
    cls = lookup_class(spec["class_name"], _layer_classes(), custom_objects, "layer class")
    if not (isinstance(cls, type) and hasattr(cls, "from_config")):
        raise ValueError(f"'{spec['class_name']}' does not name a layer class")
    with custom_object_scope(custom_objects):
        try:
            return cls.from_config(dict(spec.get("config", {})))
        except (TypeError, KeyError) as e:
            raise ValueError(f"Cannot rebuild layer '{spec['class_name']}' from its config: {e}") from e


# ----- safetensors: atomic write and validated read ------------------------------------------
def atomic_write(path, write_fn):
    """Writes a file through ``write_fn(binary_file)`` so that readers see old or new, never half.

    The data goes to a temporary file in the target's folder, is flushed and fsynced, and
    replaces the target with ``os.replace``. On any error the temporary file is removed and
    the target is left untouched.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _digest(header, data_chunks):
    h = hashlib.sha256(_canonical(header))
    for chunk in data_chunks:
        h.update(chunk)
    return h.hexdigest()


def write_safetensors(path, tensors, metadata=None, checksum=True):
    """Writes ``{name: array}`` and string `metadata` as a safetensors file, atomically.

    Args:
        path: Destination.
        tensors: Mapping of names to numpy arrays (or tensors), written in that order.
        metadata: String-to-string map stored as ``__metadata__``.
        checksum: Add the ``sha256`` metadata entry that readers here verify.
    """
    header, chunks, offset = {}, [], 0
    for name, value in tensors.items():
        arr = value.detach().numpy() if isinstance(value, lamina.Tensor) else np.asarray(value)
        code = _CODES.get(arr.dtype.newbyteorder("="))
        if code is None:
            raise TypeError(f"write_safetensors: dtype {arr.dtype} of '{name}' has no safetensors code")
        raw = np.ascontiguousarray(arr, dtype=_DTYPES[code][0]).tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    header["__metadata__"] = meta
    if checksum:
        meta["sha256"] = _digest(header, chunks)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)

    def write(f):
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for chunk in chunks:
            f.write(chunk)

    atomic_write(path, write)


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key '{key}' in header")
        out[key] = value
    return out


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def read_safetensors(path, verify_checksum=None):
    """Reads and validates a safetensors file.

    Args:
        path: File to read.
        verify_checksum: True to require the ``sha256`` entry, False to skip it; None
            checks it when present and requires it in files marked as Lamina files.

    Returns:
        (tensors, metadata): ``{name: numpy array}`` in file order (BF16 widened to
        float32) and the string metadata.

    Raises:
        ValueError: when the file is truncated, corrupt or inconsistent.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        blob = f.read()
    where = f"{path}: not a valid safetensors file"
    if len(blob) < 8:
        raise ValueError(f"{where}: {len(blob)} bytes is too short for the header length (truncated?)")
    n = int.from_bytes(blob[:8], "little")
    if n > MAX_HEADER_BYTES:
        raise ValueError(f"{where}: header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit")
    if 8 + n > len(blob):
        raise ValueError(f"{where}: header of {n} bytes runs past the end of the {len(blob)}-byte file (truncated?)")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ValueError(f"{where}: header is not well-formed JSON ({e})") from e
    if not isinstance(header, dict):
        raise ValueError(f"{where}: header must be a JSON object")
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise ValueError(f"{where}: __metadata__ must map strings to strings")
    data = memoryview(blob)[8 + n:]
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{where}: entry '{name}' must have exactly dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _DTYPES:
            raise ValueError(f"{where}: entry '{name}' has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise ValueError(f"{where}: entry '{name}' has an invalid shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= len(data)):
            raise ValueError(f"{where}: entry '{name}' has data offsets {offsets!r} outside the "
                             f"{len(data)}-byte data section")
        if math.prod(shape) * _DTYPES[dtype][1] != offsets[1] - offsets[0]:
            raise ValueError(f"{where}: entry '{name}' of shape {shape} and dtype {dtype} does not fill its "
                             f"{offsets[1] - offsets[0]} bytes")
        spans.append((offsets[0], offsets[1], name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            problem = "overlaps the previous entry" if begin < position else f"leaves a gap at byte {position}"
            raise ValueError(f"{where}: entry '{name}' {problem}")
        position = end
    if position != len(data):
        raise ValueError(f"{where}: tensors cover {position} bytes but the data section has {len(data)} "
                         f"(truncated or trailing bytes)")
    if verify_checksum is None:
        verify_checksum = "sha256" in meta or meta.get("format", "").startswith("lamina.")
    if verify_checksum:
        expected = meta.get("sha256")
        if expected is None:
            raise ValueError(f"{path}: the file has no sha256 checksum")
        rest = dict(header)
        rest["__metadata__"] = {k: v for k, v in meta.items() if k != "sha256"}
        if _digest(rest, [data]) != expected:
            raise ValueError(f"{path}: checksum mismatch; the file is corrupt")
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype=_DTYPES[entry["dtype"]][0]).reshape(entry["shape"])
        if entry["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = arr.astype(arr.dtype.newbyteorder("="), copy=True)
    return tensors, meta


# ----- weights by layer path -------------------------------------------------------------------
def weight_paths(layer, prefix=""):
    """[(path, tensor)] in ``get_weights`` order; paths are relative to `layer`."""
    out = [(f"{prefix}{name}", w) for name, w, *_ in layer._weights]
    for sub in layer._layers:
        out += weight_paths(sub, f"{prefix}{sub.name}/")
    return out


def _weights_dict(model):
    items = weight_paths(model)
    names = [p for p, _ in items]
    dupes = sorted({p for p in names if names.count(p) > 1})
    if dupes:
        raise ValueError(f"Cannot save '{model.name}': several weights are named {dupes}; give layers unique names")
    return dict(items)


def _assign_weights(model, tensors, path):
    items = weight_paths(model)
    if not items and tensors:
        raise ValueError(f"{path}: model '{model.name}' has no weights yet; build it (call it on data) first")
    if all(p in tensors for p, _ in items) and len(items) == len(tensors):
        values = [tensors[p] for p, _ in items]
    else:
        # Names differ (fresh layers are numbered anew): fall back to creation order, but
        # only when the count and every shape agree.
        values = list(tensors.values())
        if len(values) != len(items) or any(tuple(v.shape) != tuple(w.shape) for v, (_, w) in zip(values, items)):
            missing = [p for p, _ in items if p not in tensors][:5]
            raise ValueError(f"{path}: weights do not match model '{model.name}' (file has {len(values)}, model "
                             f"has {len(items)}; missing names include {missing})")
    for (name, w), v in zip(items, values):
        if tuple(v.shape) != tuple(w.shape):
            raise ValueError(f"{path}: weight '{name}' has shape {tuple(v.shape)} in the file, {tuple(w.shape)} "
                             f"in the model")
    converted = []
    for (name, w), v in zip(items, values):
        if v.dtype.kind not in "fiub":
            raise ValueError(f"{path}: weight '{name}' has dtype {v.dtype}, which is not numeric")
        if v.dtype.kind in "iub" or v.dtype.itemsize > 8:  # any integer width (U16, I8, ...) goes through float64
            v = v.astype(np.float64)
        converted.append(lamina.tensor(np.ascontiguousarray(v), dtype=w.dtype))
    with lamina.no_grad():
        for (_, w), v in zip(items, converted):
            w.copy_(v)


def save_weights(model, path):
    """Writes the model's weights (by layer path) as a safetensors file, atomically."""
    meta = {"format": "lamina.weights", "format_version": FORMAT_VERSION}
    write_safetensors(path, _weights_dict(model), meta)


def load_weights(model, path):
    """Loads weights saved by ``save_weights`` or ``save`` (or any safetensors file whose
    names or order and shapes match) into a built model.

    Raises:
        ValueError: for a corrupt file or weights that do not fit the model.
    """
    tensors, _ = read_safetensors(path)
    _assign_weights(model, tensors, os.fspath(path))


# ----- training checkpoints --------------------------------------------------------------------
def save_checkpoint(model, path, epoch=0, extra=None):
    """Writes everything needed to resume training bit for bit, atomically, in one file:
    the weights (by layer path), the optimizer state (slots such as Adam's moments, as
    ``optimizer/{index}/{slot}`` in ``trainable_weights`` order, and its step count), the
    epoch, the lamina RNG state and string `extra` metadata.

    A process killed while saving leaves the previous checkpoint intact (see ``atomic_write``).
    """
    from lamina.optimizers.optimizer import optimizer_state

    tensors = dict(_weights_dict(model))
    meta = {"format": "lamina.checkpoint", "format_version": FORMAT_VERSION, "epoch": str(int(epoch)),
            "rng_state": json.dumps([int(v) for v in lamina.random.get_state()])}
    if getattr(model, "optimizer", None) is not None:
        arrays, scalars = optimizer_state(model.optimizer, model.trainable_weights)
        tensors.update({f"optimizer/{k}": v for k, v in arrays.items()})
        meta.update({f"optimizer_{k}": v for k, v in scalars.items()})
    meta.update({f"extra_{k}": str(v) for k, v in (extra or {}).items()})
    write_safetensors(path, tensors, meta)


def load_checkpoint(model, path, restore_rng=True):
    """Restores a checkpoint written by ``save_checkpoint`` into a built, compiled model.

    Returns:
        ``{"epoch": int, "extra": {str: str}}``; training resumes at ``epoch + 1``.

    Raises:
        ValueError: for a corrupt file, or one that does not fit the model.
    """
    from lamina.optimizers.optimizer import set_optimizer_state

    tensors, meta = read_safetensors(path, verify_checksum=True)
    if meta.get("format") != "lamina.checkpoint":
        raise ValueError(f"{path}: not a Lamina checkpoint (format {meta.get('format')!r})")
    try:
        epoch = int(meta["epoch"])
        rng = json.loads(meta["rng_state"])
        seed_value, offset = (int(v) for v in rng)
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"{path}: malformed checkpoint metadata ({e})") from e
    opt = {k[len("optimizer/"):]: v for k, v in tensors.items() if k.startswith("optimizer/")}
    weights = {k: v for k, v in tensors.items() if not k.startswith("optimizer/")}
    _assign_weights(model, weights, os.fspath(path))
    if getattr(model, "optimizer", None) is not None:
        scalars = {k[len("optimizer_"):]: v for k, v in meta.items() if k.startswith("optimizer_")}
        set_optimizer_state(model.optimizer, model.trainable_weights, opt, scalars)
    if restore_rng:
        lamina.random.set_state((seed_value, offset))
    return {"epoch": epoch, "extra": {k[len("extra_"):]: v for k, v in meta.items() if k.startswith("extra_")}}


# ----- compile configuration -------------------------------------------------------------------
def _serialize_optimizer(opt):
    from lamina.optimizers import LossScaleOptimizer
    from lamina.optimizers.schedules import LearningRateSchedule

    if type(opt) is LossScaleOptimizer:
        return {"class_name": "LossScaleOptimizer",
                "config": {**opt.get_config(), "inner_optimizer": _serialize_optimizer(opt.inner_optimizer)}}
    config = dict(opt.get_config())
    lr = config.get("learning_rate")
    if isinstance(lr, LearningRateSchedule):
        config["learning_rate"] = {"class_name": type(lr).__name__, "config": lr.get_config()}
    elif callable(lr):
        config["learning_rate"] = opt.lr
    return {"class_name": get_registered_name(type(opt)) or type(opt).__name__, "config": config}


def _deserialize_optimizer(spec, custom_objects):
    from lamina import optimizers
    from lamina.optimizers import schedules

    builtins = {c.__name__: c for c in (optimizers.SGD, optimizers.Adam, optimizers.AdamW, optimizers.RMSprop,
                                        optimizers.Adagrad)}
    if spec["class_name"] == "LossScaleOptimizer":
        config = dict(spec["config"])
        inner = _deserialize_optimizer(config.pop("inner_optimizer"), custom_objects)
        return optimizers.LossScaleOptimizer(inner, **config)
    cls = lookup_class(spec["class_name"], builtins, custom_objects, "optimizer")
    config = dict(spec["config"])
    lr = config.get("learning_rate")
    if isinstance(lr, dict):
        known = {n: c for n, c in vars(schedules).items()
                 if isinstance(c, type) and issubclass(c, schedules.LearningRateSchedule)}
        config["learning_rate"] = lookup_class(lr["class_name"], known, custom_objects, "schedule").from_config(
            lr["config"])
    return cls(**config)


def compile_config(model):
    """JSON-able description of what ``compile`` was given, or None."""
    from lamina import losses

    if getattr(model, "optimizer", None) is None:
        return None
    loss = model.loss
    loss_spec = None
    if loss is not None:
        fn = loss.fn
        fn_name = next((n for n, f in losses._BY_NAME.items() if f is fn), None)
        fn_name = fn_name or get_registered_name(fn) or getattr(fn, "__name__", None)
        loss_spec = {"fn": fn_name, "name": loss.name, "kwargs": loss.kwargs}
    metrics = [m for m in getattr(model, "_compile_metric_names", [])]
    return {"optimizer": _serialize_optimizer(model.optimizer), "loss": loss_spec, "metrics": metrics}


def _compile_from_config(model, config, custom_objects):
    from lamina import losses

    optimizer = _deserialize_optimizer(config["optimizer"], custom_objects)
    loss = None
    if config.get("loss"):
        spec = config["loss"]
        fn = losses._BY_NAME.get(spec["fn"]) or get_registered_object(spec["fn"], custom_objects)
        if fn is None:
            raise ValueError(f"Unknown loss function '{spec['fn']}'. Pass it in custom_objects, or load with "
                             f"compile=False")
        loss = losses.Loss(fn, name=spec.get("name"), **spec.get("kwargs", {}))
    model.compile(optimizer=optimizer, loss=loss, metrics=config.get("metrics") or None)


# ----- whole models --------------------------------------------------------------------------
def save_model(model, path):
    """Writes architecture, compile settings and weights to one file (see module docstring)."""
    spec = serialize_layer(model)
    meta = {"format": "lamina.model", "format_version": FORMAT_VERSION, "lamina_version": lamina.__version__,
            "model_config": json.dumps(spec)}
    compiled = compile_config(model)
    if compiled is not None:
        try:
            meta["compile_config"] = json.dumps(compiled)
        except (TypeError, ValueError):
            warnings.warn("save: the compile settings are not serializable and were left out", stacklevel=3)
    write_safetensors(path, _weights_dict(model), meta)


def load_model(path, custom_objects=None, compile=True):  # noqa: A002 (Keras spelling)
    """Rebuilds a model saved by ``model.save``.

    Args:
        path: The file.
        custom_objects: ``{name: class or function}`` for user layers, activations, losses.
        compile: Re-compile with the saved optimizer, loss and metrics when present.

    Raises:
        ValueError: when the file is corrupt, not a Lamina model, or names an unknown class.
    """
    tensors, meta = read_safetensors(path, verify_checksum=True)
    if meta.get("format") != "lamina.model":
        raise ValueError(f"{path}: not a Lamina model file (format {meta.get('format')!r}); use load_weights for "
                         f"weight files")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format version {meta.get('format_version')!r}")
    try:
        spec = json.loads(meta["model_config"])
        compiled = json.loads(meta["compile_config"]) if "compile_config" in meta else None
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path}: missing or malformed model config ({e})") from e
    model = deserialize_layer(spec, custom_objects)
    _assign_weights(model, tensors, os.fspath(path))
    if compile and compiled is not None:
        with custom_object_scope(custom_objects):
            try:
                _compile_from_config(model, compiled, custom_objects)
            except (TypeError, KeyError, AttributeError, IndexError) as e:
                raise ValueError(f"{path}: invalid compile config ({type(e).__name__}: {e}); load with "
                                 f"compile=False to skip it") from e
    return model


__all__ = ["register_serializable", "custom_object_scope", "get_registered_object", "get_registered_name",
           "serialize_layer", "deserialize_layer", "save_model", "load_model", "save_weights", "load_weights",
           "read_safetensors", "write_safetensors", "atomic_write", "save_checkpoint", "load_checkpoint"]
