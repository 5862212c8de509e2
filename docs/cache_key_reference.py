#!/usr/bin/env python3
"""Reference implementation of Updraft's cache-key encoding (docs/caching.md).

Written from the document, independently of the Rust code, to show that the
encoding can be reproduced bit for bit. Running it prints the golden vectors
that core/src/cache_key.rs asserts.
"""
import hashlib
import struct

SIMPLE = {"int": 1, "float": 2, "string": 3, "bool": 4, "datetime": 5, "duration": 6}


def u64(v):
    return struct.pack(">Q", v)


def i64(v):
    return struct.pack(">q", v)


def s(text):
    raw = text.encode("utf-8")
    return u64(len(raw)) + raw


def encode_type(t):
    """t is ("simple", name) | ("list", t) | ("map", t) | ("optional", t) | ("file", fmt) | ..."""
    kind = t[0]
    if kind == "simple":
        return b"S" + bytes([SIMPLE[t[1]]])
    if kind in ("list", "map", "optional"):
        return {"list": b"L", "map": b"M", "optional": b"O"}[kind] + encode_type(t[1])
    if kind == "file":
        return b"F" + s(t[1])
    if kind == "directory":
        return b"D"
    raise ValueError(kind)


def encode_literal(v):
    kind, value = v
    if kind == "none":
        return b"n"
    if kind == "int":
        return b"i" + i64(value)
    if kind == "float":
        bits = 0 if value == 0.0 else struct.unpack(">Q", struct.pack(">d", value))[0]
        return b"f" + u64(bits)
    if kind == "string":
        return b"s" + s(value)
    if kind == "bool":
        return b"b" + bytes([1 if value else 0])
    if kind == "list":
        return b"l" + u64(len(value)) + b"".join(encode_literal(x) for x in value)
    if kind == "map":
        return b"m" + u64(len(value)) + b"".join(s(k) + encode_literal(value[k]) for k in sorted(value, key=str.encode))
    raise ValueError(kind)


def literal_digest(v):
    return hashlib.sha256(encode_literal(v)).digest()


def variables(vs):
    out = u64(len(vs))
    for name in sorted(vs, key=str.encode):
        out += s(name) + encode_type(vs[name])
    return out


def task_digest(image, args, env, inputs, outputs):
    data = s("updraft-task/v1") + s(image) + u64(len(args)) + b"".join(s(a) for a in args)
    data += u64(len(env)) + b"".join(s(k) + s(env[k]) for k in sorted(env, key=str.encode))
    data += variables(inputs) + variables(outputs)
    return hashlib.sha256(data).digest()


def cache_key(project, domain, task, digest, cache_version, inputs):
    data = s("updraft-cache-key/v1") + s(project) + s(domain) + s(task) + digest + s(cache_version)
    data += u64(len(inputs))
    for name in sorted(inputs, key=str.encode):
        data += s(name) + literal_digest(inputs[name])
    return hashlib.sha256(data).hexdigest()


if __name__ == "__main__":
    print("int 7:          ", literal_digest(("int", 7)).hex())
    print("string hello:   ", literal_digest(("string", "hello")).hex())
    print("list [0.5,true]:", literal_digest(("list", [("float", 0.5), ("bool", True)])).hex())
    digest = task_digest(
        "python:3.11-slim",
        ["python", "fit.py", "{{inputs.seed}}"],
        {"MODE": "fast"},
        {"seed": ("simple", "int"), "rate": ("simple", "float")},
        {"model": ("file", "")},
    )
    print("task digest:    ", digest.hex())
    print("cache key:      ", cache_key("demo", "development", "fit", digest, "1",
                                        {"seed": ("int", 7), "rate": ("float", 0.5)}))
