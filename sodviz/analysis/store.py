"""The analysis store: Parquet files per finished batch of images, read with DuckDB.

Layout (see docs/dataset.md for every column)::

    STORE/runs/<run id>/run.json           model, dataset and settings of the run
    STORE/runs/<run id>/manifest.parquet   the dataset's images now (file_name, image_key)
    STORE/runs/<run id>/batch-<n>/<table>.parquet   images, objects, detections, methods, skipped

A batch folder is written under a hidden name and renamed into place in one step, so readers
and reruns see whole batches or nothing: a crash or a cancel loses only the batch in flight.
Rows are keyed by image key (a hash of the file's bytes and of its annotations); the run id hashes
the model's weights, the settings and the dataset's path, so a rerun skips every image it holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

# Where `analyze` and the Dataset page keep runs: $SODVIZ_STORE, else runs/store in the working folder.
DEFAULT_STORE = os.environ.get("SODVIZ_STORE") or "runs/store"
_F, _I, _S, _B = pa.float64(), pa.int64(), pa.string(), pa.bool_()
_BOX = [("x0", _F), ("y0", _F), ("x1", _F), ("y1", _F)]
SCHEMAS = {
    "images": pa.schema([
        ("image_key", _S), ("image_id", _S), ("file_name", _S), ("width", _I), ("height", _I),
        ("length_scale", _F), ("objects", _I), ("gate_refine", _B), ("uncertain_queries", _I),
        ("seconds", _F),
    ]),
    "objects": pa.schema([
        ("image_key", _S), ("image_id", _S), ("file_name", _S), ("annotation_id", _I), ("category", _S),
        *_BOX, ("size_image", _F), ("size_input", _F), ("bucket", _S), ("matched", _B), ("error", _S),
        ("nearest_query", _I), ("nearest_iou", _F), ("nearest_score", _F), ("nearest_class", _S),
        ("nearest_entropy", _F), ("attention_share", _F), ("points_share", _F),
        ("nearest_attention_share", _F), ("found_after", pa.list_(_S)),
    ]),
    "detections": pa.schema([
        ("image_key", _S), ("file_name", _S), ("method", _S), ("query", _I), ("label", _I),
        ("class_name", _S), ("score", _F), *_BOX, ("size_input", _F), ("bucket", _S), ("status", _S),
        ("fp_type", _S), ("entropy", _F),
    ]),
    "methods": pa.schema([
        ("image_key", _S), ("file_name", _S), ("method", _S), ("passes", _I), ("seconds", _F),
        ("tp", _I), ("fp", _I), ("fn", _I),
    ]),
    "crowds": pa.schema([("image_key", _S), ("file_name", _S), ("category", _S), *_BOX]),
    "skipped": pa.schema([("image_key", _S), ("file_name", _S), ("reason", _S)]),
}  # fmt: skip
TABLES = tuple(SCHEMAS)
# A row's batch folder: the last folder of its file's path (a store may sit under a "batch-" folder).
_BATCH = "regexp_extract(filename, '(batch-[^/\\\\]+)[/\\\\][^/\\\\]+$', 1)"
SCHEMA_VERSION = 2  # part of every run id: rows of an older schema or error logic are not reused
MANIFEST = pa.schema([("image_key", pa.string()), ("file_name", pa.string())])


def run_id(model_hash: str, settings_digest: str, dataset: str) -> str:
    """The id of a run: model weights, settings and the dataset's annotations path."""
    text = f"{SCHEMA_VERSION}|{model_hash}|{settings_digest}|{dataset}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def image_key(data: bytes, annotations: list) -> str:
    """An image's key: its file's bytes and its annotations (changing either recomputes it)."""
    digest = hashlib.sha256(data)
    digest.update(json.dumps(annotations, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:24]


class RunStore:
    """One run's folder: its metadata, its manifest and its batches (the only writer is the job)."""

    def __init__(self, store: str | Path, run: str) -> None:
        self.root = Path(store) / "runs" / run
        self.run = run

    def create(self, meta: dict, manifest: list[tuple[str, str]]) -> None:
        """Write run.json (first time) and the manifest (every time: the dataset as it is now)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / "run.json").exists():
            meta = meta | {"schema": SCHEMA_VERSION}
            _atomic_bytes(self.root / "run.json", json.dumps(meta, indent=1, default=str).encode())
        keys, names = zip(*manifest, strict=True) if manifest else ((), ())
        table = pa.table({"image_key": list(keys), "file_name": list(names)}, schema=MANIFEST)
        temporary = self.root / f".manifest-{uuid.uuid4().hex}.parquet"
        pq.write_table(table, temporary)
        os.replace(temporary, self.root / "manifest.parquet")

    def meta(self) -> dict:
        return json.loads((self.root / "run.json").read_text())

    def batches(self) -> list[Path]:
        """Finished batch folders, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and p.name.startswith("batch-"))

    def done_keys(self) -> set[str]:
        """Image keys some finished batch analysed (skipped images are not done: a rerun retries them)."""
        files = [str(b / "images.parquet") for b in self.batches()]
        if not files:
            return set()
        return set(pq.read_table(files, columns=["image_key"]).column("image_key").to_pylist())

    def write_batch(self, rows: dict[str, list[dict]]) -> Path:
        """Write one batch (a list of row dicts per table) and rename it into place."""
        name = f"batch-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        temporary = self.root / f".{name}"
        temporary.mkdir(parents=True)
        try:
            for table, schema in SCHEMAS.items():
                pq.write_table(
                    pa.Table.from_pylist(rows.get(table, []), schema=schema), temporary / f"{table}.parquet"
                )
            os.rename(temporary, self.root / name)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        return self.root / name


def list_runs(store: str | Path) -> list[dict]:
    """Every run of this schema in a store: its run.json plus `run` (the id), newest first."""
    root = Path(store) / "runs"
    runs = []
    for folder in root.iterdir() if root.is_dir() else []:
        if (folder / "run.json").is_file():
            meta = json.loads((folder / "run.json").read_text())
            if meta.get("schema") == SCHEMA_VERSION:  # an older schema's rows are not read
                runs.append(meta | {"run": folder.name})
    return sorted(runs, key=lambda meta: meta.get("created", ""), reverse=True)


def connect(store: str | Path, runs: list[str]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB holding the current rows of `runs`, one table per kind with a `run`
    column: each image's newest batch, for the images the run's manifest lists now."""
    con = duckdb.connect(":memory:")
    for table, schema in SCHEMAS.items():
        columns = ", ".join(f'"{name}" {_duck_type(schema.field(name).type)}' for name in schema.names)
        con.execute(f'CREATE TABLE "{table}" (run VARCHAR, batch VARCHAR, {columns})')
    for run in runs:
        load_run(con, RunStore(store, run))
    return con


def load_run(con: duckdb.DuckDBPyConnection, run: RunStore) -> None:
    """(Re)load one run's rows into `connect`'s tables."""
    for table in TABLES:
        con.execute(f'DELETE FROM "{table}" WHERE run = ?', [run.run])
    batches = run.batches()
    manifest = run.root / "manifest.parquet"
    if not batches or not manifest.is_file():
        return
    files = {t: [str(b / f"{t}.parquet") for b in batches] for t in TABLES}
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _latest AS SELECT i.image_key, max(i.batch) AS batch FROM "
        f"(SELECT image_key, {_BATCH} AS batch "
        " FROM read_parquet(?, filename = true)) i "
        "JOIN read_parquet(?) m USING (image_key) GROUP BY i.image_key",
        [files["images"], str(manifest)],
    )
    for table in TABLES:
        names = ", ".join(f't."{n}"' for n in SCHEMAS[table].names)
        rows = f"SELECT *, {_BATCH} AS batch FROM read_parquet(?, filename = true)"
        if table == "skipped":  # the newest try of each listed image that no batch analysed since
            query = (
                f"SELECT ? AS run, t.batch, {names} FROM ({rows}) t JOIN read_parquet(?) m USING (image_key) "
                "WHERE t.image_key NOT IN (SELECT image_key FROM _latest) "
                "QUALIFY row_number() OVER (PARTITION BY t.image_key ORDER BY t.batch DESC) = 1"
            )
            con.execute(f'INSERT INTO "{table}" {query}', [run.run, files[table], str(manifest)])
            continue
        query = f"SELECT ? AS run, t.batch, {names} FROM ({rows}) t JOIN _latest l USING (image_key, batch)"
        con.execute(f'INSERT INTO "{table}" {query}', [run.run, files[table]])


def _duck_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_list(arrow_type):
        return "VARCHAR[]"
    return {"double": "DOUBLE", "int64": "BIGINT", "string": "VARCHAR", "bool": "BOOLEAN"}[str(arrow_type)]


def _atomic_bytes(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    temporary.write_bytes(data)
    os.replace(temporary, path)
