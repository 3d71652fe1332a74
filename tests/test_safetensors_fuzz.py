"""Mutation fuzzing of model and weight files written by lamina.

Valid files (a whole model, its weights, and a raw multi-dtype file without checksum) are
damaged in many ways: truncation at random points, bit flips, a wrong header length
(huge, zero, off by a few), header JSON edits (shapes, dtypes, offsets, missing and extra
keys, duplicate keys, deep nesting, metadata of the wrong type, model and compile configs
naming unknown classes or holding junk), with or without a recomputed checksum, so that
both the checksum and the checks behind it are exercised.

Each case must either be rejected with a ValueError that says what is wrong, or load; and a
file that loads must load exactly: the values agree with the independent reference reader
(the `safetensors` package, when installed) and with what the model then holds. Never
another exception, a crash or a hang (each case is timed).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

import lamina
from lamina import layers, saving

CASES_PER_FILE = int(os.environ.get("LAMINA_FILE_FUZZ_CASES", "400"))

try:
    import safetensors.numpy as st_numpy
except ImportError:  # pragma: no cover - optional reference
    st_numpy = None


def _model():
    lamina.random.seed(3)
    m = lamina.Sequential([layers.Dense(4, activation="relu", input_shape=(3,)), layers.LayerNormalization(),
                           layers.Dense(2)])
    m.compile(optimizer="adam", loss="mse", metrics=["mae"])
    m(lamina.ones((1, 3)))
    return m


def _split(blob):
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def _join(header, data, fix_checksum):
    header = json.loads(json.dumps(header))
    meta = header.get("__metadata__")
    if fix_checksum and isinstance(meta, dict) and "sha256" in meta:
        rest = dict(header)
        rest["__metadata__"] = {k: v for k, v in meta.items() if k != "sha256"}
        meta["sha256"] = saving._digest(rest, [data])
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data


JUNK_VALUES = [None, -1, 2**62, 2**64, 1.5, "x", [], {}, [1, 2, 3], [-1, 2], True, [2**63, 2**63 + 8], "F32",
               [[1]], {"a": 1}]
DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64", "BOOL", "f32", "F8",
          "C64", "", "STR"]


def _pick(rng, seq):
    seq = list(seq)
    return seq[int(rng.integers(len(seq)))]


def _edit_config(rng, config_text):
    """A damaged model or compile config (JSON text in the metadata)."""
    try:
        spec = json.loads(config_text)
    except ValueError:
        return config_text[: len(config_text) // 2]
    edits = [
        lambda s: s.update(class_name=_pick(rng, ["os.system", "__import__", "Dense", "NoSuchLayer", 3, None])),
        lambda s: s.update(config=_pick(rng, JUNK_VALUES)),
        lambda s: s.pop("config", None),
        lambda s: s.pop("class_name", None),
    ]

    def layer_edit(s):
        cfg = s.get("config")
        if isinstance(cfg, dict) and isinstance(cfg.get("layers"), list) and cfg["layers"]:
            i = int(rng.integers(len(cfg["layers"])))
            layer = cfg["layers"][i]
            if isinstance(layer, dict) and isinstance(layer.get("config"), dict):
                key = _pick(rng, list(layer["config"]) + ["units", "activation", "epsilon", "bogus"])
                layer["config"][key] = JUNK_VALUES[int(rng.integers(len(JUNK_VALUES)))]
            elif rng.random() < 0.5:
                cfg["layers"][i] = JUNK_VALUES[int(rng.integers(len(JUNK_VALUES)))]
            else:
                cfg["layers"] = JUNK_VALUES[int(rng.integers(len(JUNK_VALUES)))]

    def compile_edit(s):
        target = _pick(rng, ["optimizer", "loss", "metrics"])
        if target in s and isinstance(s[target], dict) and rng.random() < 0.6:
            key = _pick(rng, list(s[target]) + ["bogus"])
            s[target][key] = JUNK_VALUES[int(rng.integers(len(JUNK_VALUES)))]
        else:
            s[target] = JUNK_VALUES[int(rng.integers(len(JUNK_VALUES)))]

    if isinstance(spec, dict):
        _pick(rng, edits + [layer_edit] * 3 + [compile_edit] * 2)(spec)
    return json.dumps(spec)


def _mutate(rng, blob):
    """(mutated bytes, description)."""
    kind = _pick(rng, ["truncate", "flip", "length", "header", "header", "header", "header", "append", "config",
                       "config"])
    if kind == "truncate":
        k = int(rng.integers(0, len(blob)))
        return blob[:k], f"truncated to {k}"
    if kind == "flip":
        b = bytearray(blob)
        for _ in range(int(rng.integers(1, 5))):
            i = int(rng.integers(len(b)))
            b[i] ^= 1 << int(rng.integers(8))
        return bytes(b), "bit flips"
    if kind == "length":
        n = int.from_bytes(blob[:8], "little")
        new = int(_pick(rng, [0, 1, n - 8, n - 1, n + 1, n + 8, 2**32, 2**63, 2**64 - 1, 100 * 1024 * 1024 + 1]))
        return new.to_bytes(8, "little") + blob[8:], f"header length {new}"
    if kind == "append":
        return blob + bytes(rng.integers(0, 256, int(rng.integers(1, 17)), dtype=np.uint8)), "trailing bytes"
    header, data = _split(blob)
    fix = bool(rng.random() < 0.7)
    names = [k for k in header if k != "__metadata__"]
    if kind == "config":
        meta = header.get("__metadata__", {})
        key = _pick(rng, ["model_config", "compile_config", "format", "format_version"])
        if key in ("model_config", "compile_config") and key in meta:
            meta[key] = _edit_config(rng, meta[key])
        else:
            meta[key] = str(_pick(rng, ["lamina.weights", "lamina.model", "2", "", "0"]))
        return _join(header, data, fix), f"config edit {key} (checksum fixed={fix})"
    name = _pick(rng, names) if names else "__metadata__"
    entry = header.get(name)
    edit = _pick(rng, ["shape", "dtype", "offsets", "offsets", "drop", "extra", "rename", "meta", "nest", "dup",
                       "swap", "remove_entry", "add_entry"])
    if edit == "shape" and isinstance(entry, dict):
        c = rng.integers(4)
        shape = entry["shape"]
        if c == 0:
            entry["shape"] = shape + [1] if rng.random() < 0.5 else shape[:-1]
        elif c == 1:
            entry["shape"] = [d * 2 for d in shape] or [2]
        elif c == 2:
            entry["shape"] = list(reversed(shape))
        else:
            entry["shape"] = JUNK_VALUES[int(rng.integers(len(JUNK_VALUES)))]
    elif edit == "dtype" and isinstance(entry, dict):
        entry["dtype"] = _pick(rng, DTYPES)
    elif edit == "offsets" and isinstance(entry, dict):
        b, e = entry["data_offsets"]
        entry["data_offsets"] = [[b, e + 4], [b - 4, e], [e, b], [0, e - b], [b, 2**63], [-8, e], [b + 1, e + 1],
                                 [0, len(data)], [b, e, 0], [b], "0-4", [float(b), float(e)]][int(rng.integers(12))]
    elif edit == "drop" and isinstance(entry, dict):
        entry.pop(_pick(rng, ["dtype", "shape", "data_offsets"]))
    elif edit == "extra" and isinstance(entry, dict):
        entry["extra"] = 1
    elif edit == "rename" and name in header:
        header[name + "_x" if rng.random() < 0.5 else ""] = header.pop(name)
    elif edit == "meta":
        header["__metadata__"] = JUNK_VALUES[int(rng.integers(len(JUNK_VALUES)))] if rng.random() < 0.5 else {
            **header.get("__metadata__", {}), "x": 1}
    elif edit == "nest":  # deeply nested JSON, written as raw text (deeper than json.dumps can go)
        depth = int(_pick(rng, [10, 100, 5000, 100_000]))
        text = json.dumps(header, separators=(",", ":"))
        text = text[:-1] + ',"deep":' + '{"a":' * depth + "{}" + "}" * depth + "}"
        raw = text.encode() + b" " * (-len(text) % 8)
        return len(raw).to_bytes(8, "little") + raw + data, f"nesting {depth}"
    elif edit == "dup" and names:
        text = json.dumps(header, separators=(",", ":"))
        dup = json.dumps({name: header[name]}, separators=(",", ":"))[1:-1]
        text = "{" + dup + "," + text[1:]
        raw = text.encode() + b" " * (-len(text) % 8)
        return len(raw).to_bytes(8, "little") + raw + data, "duplicate key"
    elif edit == "swap" and len(names) >= 2:
        a, b = [names[i] for i in rng.permutation(len(names))[:2]]
        header[a]["data_offsets"], header[b]["data_offsets"] = header[b]["data_offsets"], header[a]["data_offsets"]
    elif edit == "remove_entry" and names:
        del header[name]
    elif edit == "add_entry":
        header["added"] = {"dtype": "F32", "shape": [1], "data_offsets": [len(data), len(data) + 4]}
        if rng.random() < 0.5:
            data = data + b"\0\0\0\0"
    return _join(header, data, fix), f"header edit {edit} on {name!r} (checksum fixed={fix})"


def _reference(path):
    if st_numpy is None:
        return None
    try:
        return st_numpy.load_file(path)
    except Exception:  # noqa: BLE001 - the reference may reject more than we do
        return None


def _check_same(ours, path):
    ref = _reference(path)
    if ref is None:
        return
    assert list(ref) == list(ours) or set(ref) == set(ours), f"names differ: {list(ref)} vs {list(ours)}"
    for name, arr in ours.items():
        r = ref[name]
        if r.dtype.kind == "V" or str(r.dtype) == "bfloat16":
            continue
        assert r.shape == arr.shape and np.array_equal(r.view(np.uint8), arr.view(np.uint8)), name


FILES = ["model", "weights", "raw"]


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    d = tmp_path_factory.mktemp("orig")
    m = _model()
    m.save(d / "m.lamina")
    m.save_weights(d / "w.safetensors")
    rng = np.random.default_rng(0)
    saving.write_safetensors(d / "r.safetensors", {
        "f64": rng.normal(size=(2, 3)), "f16": rng.normal(size=(5,)).astype(np.float16),
        "i32": np.arange(6, dtype=np.int32).reshape(3, 2), "u8": np.arange(3, dtype=np.uint8),
        "b": np.array([True, False]), "empty": np.zeros((0, 4), np.float32), "scalar": np.float32(7.0),
    }, {"note": "raw"}, checksum=False)
    return {"model": (d / "m.lamina").read_bytes(), "weights": (d / "w.safetensors").read_bytes(),
            "raw": (d / "r.safetensors").read_bytes()}


@pytest.mark.parametrize("which", FILES)
def test_mutated_files_are_rejected_or_load_exactly(tmp_path, originals, which):
    rng = np.random.default_rng({"model": 1, "weights": 2, "raw": 3}[which])
    model = _model()
    path = str(tmp_path / "f.safetensors")
    failures, outcomes = [], {"rejected": 0, "loaded": 0}
    for case in range(CASES_PER_FILE):
        blob, what = _mutate(rng, originals[which])
        with open(path, "wb") as f:
            f.write(blob)
        t0 = time.perf_counter()
        try:
            if which == "model":
                loaded = saving.load_model(path)
                tensors, _ = saving.read_safetensors(path)
                got = dict(saving.weight_paths(loaded))
                by_order = set(got) != set(tensors)  # names differ: loaded by creation order
                for (name, arr), (gname, w) in zip(tensors.items(), got.items()):
                    held = (w if by_order else got[name]).numpy()
                    assert np.array_equal(held, arr.astype(held.dtype), equal_nan=True), f"{name} differs after load"
            elif which == "weights":
                model.load_weights(path)
                tensors, _ = saving.read_safetensors(path)
                values = [w.numpy() for _, w in saving.weight_paths(model)]
                assert all(np.array_equal(v, a.astype(v.dtype), equal_nan=True) for v, a in zip(values, tensors.values()))
            else:
                tensors, _ = saving.read_safetensors(path, verify_checksum=False)
                _check_same(tensors, path)
            outcomes["loaded"] += 1
        except ValueError as e:
            outcomes["rejected"] += 1
            if not str(e):
                failures.append(f"case {case} ({what}): ValueError with an empty message")
        except Exception as e:  # noqa: BLE001
            failures.append(f"case {case} ({what}): {type(e).__name__}: {str(e)[:200]}")
        elapsed = time.perf_counter() - t0
        if elapsed > 2.0:
            failures.append(f"case {case} ({what}): took {elapsed:.1f} s")
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} failures)"
    assert outcomes["rejected"] > CASES_PER_FILE // 2, outcomes


def test_at_least_1000_cases():
    assert CASES_PER_FILE * len(FILES) >= 1000
