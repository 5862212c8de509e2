"""Writes the Parquet fixtures of core/src/execution/parquet.rs (pyarrow 26.0.1).

Run it from this directory: python3 make.py
"""
import datetime

import pyarrow as pa
import pyarrow.parquet as pq

table = pa.table({
    "id": pa.array([1, 2, 3], pa.int64()),
    "small": pa.array([1, 2, 3], pa.int32()),
    "score": pa.array([0.5, 1.5, None], pa.float64()),
    "ratio": pa.array([0.5, 1.5, 2.5], pa.float32()),
    "name": pa.array(["a", "b", None], pa.string()),
    "flag": pa.array([True, False, True]),
    "at": pa.array([datetime.datetime(2026, 1, 1)] * 3, pa.timestamp("us")),
    "day": pa.array([datetime.date(2026, 1, 1)] * 3, pa.date32()),
    "took": pa.array([1, 2, 3], pa.duration("ms")),
    "point": pa.array([{"x": 1, "y": 2.0}] * 3, pa.struct([("x", pa.int64()), ("y", pa.float64())])),
    "tags": pa.array([["a"], [], ["b", "c"]], pa.list_(pa.string())),
    "after": pa.array([7, 8, 9], pa.int64()),
})
pq.write_table(table, "typed.parquet", compression="snappy")
# Another writer setting: format version 1.0 (converted types only), no dictionary, no statistics.
pq.write_table(table.select(["id", "score", "name"]), "legacy.parquet", version="1.0",
               use_dictionary=False, write_statistics=False, compression="none")
