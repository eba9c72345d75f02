"""What the Dataset page and `analyze` ask of a store: SQL over DuckDB, AP by pycocotools."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pandas as pd

from sodviz.analysis.errors import MISS_TYPES
from sodviz.analysis.store import RunStore, connect, load_run
from sodviz.evaluation.buckets import AITOD_BUCKETS
from sodviz.evaluation.coco import coco_metrics

BUCKETS = tuple(AITOD_BUCKETS)
IMAGE_SORTS = ("missed", "missed_vt", "missed_t", "false_positives", "uncertain_queries", "file_name")


def found(method: str, table: str = "") -> str:
    """SQL: whether an object (of `table`, an alias) was found by `method` ("base" or a stored
    refinement, "vicrop@3")."""
    prefix = f"{table}." if table else ""
    if method == "base":
        return f"{prefix}matched"
    return f"list_contains({prefix}found_after, '{_literal(method)}')"


class Analysis:
    """The current rows of some runs of a store in an in-memory DuckDB; `refresh` reloads a run
    whose batches changed (a job still writing), so queries never read half a batch."""

    def __init__(self, store: str | Path, runs: list[str]) -> None:
        self.store = Path(store)
        self.runs = list(runs)
        self.con = connect(store, [])
        self._seen: dict[str, tuple] = {}
        self._lock = threading.RLock()  # one DuckDB connection: sessions take turns
        self.refresh()

    def refresh(self) -> bool:
        """Reload the runs whose finished batches or manifest changed; True when any did."""
        with self._lock:
            return self._refresh()

    def _refresh(self) -> bool:
        changed = False
        for run in self.runs:
            store = RunStore(self.store, run)
            manifest = store.root / "manifest.parquet"
            seen = (
                tuple(b.name for b in store.batches()),
                manifest.stat().st_mtime_ns if manifest.exists() else 0,
            )
            if self._seen.get(run) != seen:
                load_run(self.con, store)
                self._seen[run] = seen
                changed = True
        return changed

    def version(self, run: str) -> tuple:
        """What was loaded of a run (its batches and manifest): a cache key for derived figures."""
        return self._seen.get(run, ())

    def frame(self, query: str, params: list | None = None) -> pd.DataFrame:
        with self._lock:
            return self.con.execute(query, params or []).df()

    def _rows(self, query: str, params: list | None = None) -> list[tuple]:
        with self._lock:
            return self.con.execute(query, params or []).fetchall()

    def progress(self, run: str) -> tuple[int, int]:
        """(images analysed, images in the manifest)."""
        done = self._rows("SELECT count(*) FROM images WHERE run = ?", [run])[0][0]
        manifest = RunStore(self.store, run).root / "manifest.parquet"
        total = (
            self._rows("SELECT count(*) FROM read_parquet(?)", [str(manifest)])[0][0]
            if manifest.exists()
            else 0
        )
        return int(done), int(total)

    def methods(self, run: str) -> list[str]:
        rows = self._rows("SELECT DISTINCT method FROM methods WHERE run = ?", [run])
        return sorted((r[0] for r in rows), key=lambda m: (m != "base", m))

    def bucket_summary(self, run: str, method: str = "base", *, with_ap: bool = True) -> pd.DataFrame:
        """Per AI-TOD bucket (and "all"): objects, found, recall, AP, AP50, and `method`'s misses
        by the error type of the full-image pass (an object a refinement recovered is not one)."""
        table = (
            self.frame(
                f"SELECT bucket, count(*) AS objects, count(*) FILTER ({found(method)}) AS found, "
                + ", ".join(
                    f"count(*) FILTER (NOT {found(method)} AND error = '{t}') AS \"{t}\"" for t in MISS_TYPES
                )
                + " FROM objects WHERE run = ? GROUP BY bucket",
                [run],
            )
            .set_index("bucket")
            .reindex(BUCKETS, fill_value=0)
        )
        table.loc["all"] = table.sum()
        table["recall"] = table["found"] / table["objects"].where(table["objects"] > 0)
        metrics = self.ap(run, method) if with_ap else {}  # without: the AP columns are NaN
        table["AP"] = [metrics.get("AP" if b == "all" else f"AP_{b}", math.nan) for b in table.index]
        table["AP50"] = [metrics.get("AP50" if b == "all" else f"AP50_{b}", math.nan) for b in table.index]
        return table.reset_index()

    def ap(self, run: str, method: str = "base") -> dict[str, float]:
        """COCO / AI-TOD AP of a stored method's detections (pycocotools; buckets in input pixels;
        crowd regions ignored as pycocotools does; detections of classes the data lacks left out,
        as `evaluate` does)."""
        # Python numbers, not numpy scalars: pycocotools' per-image loops are several times slower on those
        boxes = self._rows(
            "SELECT image_key, category, x0, y0, x1, y1, 0 FROM objects WHERE run = ? "
            "UNION ALL SELECT image_key, category, x0, y0, x1, y1, 1 FROM crowds WHERE run = ?",
            [run, run],
        )
        images = self._rows("SELECT image_key, length_scale FROM images WHERE run = ?", [run])
        detections = self._rows(
            "SELECT image_key, class_name, score, x0, y0, x1, y1 FROM detections "
            "WHERE run = ? AND method = ?",
            [run, method],
        )
        aware = RunStore(self.store, run).meta().get("class_aware", False)
        names = sorted({box[1] for box in boxes}) if aware else ["object"]
        ids = {name: i for i, name in enumerate(names)}
        index = {key: i for i, (key, _) in enumerate(images)}  # pycocotools wants int ids
        truth = {
            "images": [{"id": i} for i in index.values()],
            "categories": [{"id": i, "name": n} for n, i in ids.items()],
            "annotations": [
                {"id": k + 1, "image_id": index[key], "category_id": ids[name] if aware else 0,
                 "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": crowd}
                for k, (key, name, x0, y0, x1, y1, crowd) in enumerate(boxes) if key in index
            ],
        }  # fmt: skip
        results = [
            {"image_id": index[key], "category_id": ids[name] if aware else 0, "score": score,
             "bbox": [x0, y0, x1 - x0, y1 - y0]}
            for key, name, score, x0, y0, x1, y1 in detections
            if not aware or name in ids
        ]  # fmt: skip
        scale = {index[key]: float(value) for key, value in images}
        return coco_metrics(truth, results, area_scale=scale)

    def image_table(
        self, run: str, *, methods: list[str] = (), bucket: str | None = None, error: str | None = None,
        sort: str = "missed", descending: bool = True, limit: int | None = None,
    ) -> pd.DataFrame:  # fmt: skip
        """One row per analysed image (with or without objects): objects, misses per bucket, false
        positives, the gate, and how many misses each refinement recovered; only images with a
        miss of `bucket` / `error` when given."""
        if sort not in IMAGE_SORTS:
            raise ValueError(f"sort must be one of {IMAGE_SORTS}, got {sort!r}")
        missed = "o.annotation_id IS NOT NULL AND NOT o.matched"
        misses = ", ".join(f"count(*) FILTER ({missed} AND o.bucket = '{b}') AS missed_{b}" for b in BUCKETS)
        recovered = "".join(
            f', count(*) FILTER ({missed} AND {found(m, "o")}) AS "recovered {m}"' for m in methods
        )
        params: list = [run]
        having = []
        if bucket:
            having.append(f"missed_{_bucket(bucket)} > 0")
        if error:
            having.append(f"count(*) FILTER ({missed} AND o.error = ?) > 0")
            params.append(error)
        query = (
            f"SELECT i.file_name, any_value(i.image_id) AS image_id, count(o.annotation_id) AS objects, "
            f"count(*) FILTER ({missed}) AS missed, {misses}, "
            f"coalesce(any_value(f.false_positives), 0) AS false_positives, "
            f"any_value(i.gate_refine) AS gate_refine, any_value(i.uncertain_queries) AS uncertain_queries"
            f"{recovered} FROM images i LEFT JOIN objects o USING (run, image_key) "
            f"LEFT JOIN (SELECT run, image_key, count(*) AS false_positives FROM detections "
            f"WHERE method = 'base' AND status = 'FP' GROUP BY ALL) f USING (run, image_key) "
            f"WHERE i.run = ? GROUP BY i.image_key, i.file_name"
            + (f" HAVING {' AND '.join(having)}" if having else "")
            + f" ORDER BY {sort} {'DESC' if descending else 'ASC'}, i.file_name"
            + (f" LIMIT {int(limit)}" if limit else "")
        )
        return self.frame(query, params)

    def missed_objects(
        self, run: str, *, method: str = "base", bucket: str | None = None, error: str | None = None,
        limit: int = 24,
    ) -> pd.DataFrame:  # fmt: skip
        """Objects `method` missed, smallest first (filtered by bucket and error type)."""
        where, params = [f"run = ? AND NOT {found(method)}"], [run]
        if bucket:
            where.append("bucket = ?")
            params.append(bucket)
        if error:
            where.append("error = ?")
            params.append(error)
        return self.frame(
            f"SELECT * FROM objects WHERE {' AND '.join(where)} "
            f"ORDER BY size_input, file_name, annotation_id LIMIT {int(limit)}",
            params,
        )

    def entropy_rows(self, run: str) -> pd.DataFrame:
        """(kind, bucket, entropy): TP and FP detections of the full image, and the queries nearest
        to missed objects."""
        return self.frame(
            "SELECT status AS kind, bucket, entropy FROM detections "
            "WHERE run = ? AND method = 'base' AND status IN ('TP', 'FP') "
            "UNION ALL SELECT 'nearest to a miss', bucket, nearest_entropy FROM objects "
            "WHERE run = ? AND NOT matched AND nearest_query >= 0",
            [run, run],
        )

    def compare(self, a: tuple[str, str], b: tuple[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Two (run, method) side by side, objects matched by image and annotation id.

        Returns:
            per image: objects, found by A, found by B, gained (B only), lost (A only), sorted by
            net change; and the gained / lost objects (`change` = "gained" or "lost").
        """
        pairs = (
            f"SELECT x.*, ({found(a[1], 'x')}) AS in_a, ({found(b[1], 'y')}) AS in_b FROM objects x "
            "JOIN objects y USING (file_name, annotation_id) WHERE x.run = ? AND y.run = ?"
        )
        params = [a[0], b[0]]
        per_image = self.frame(
            f"SELECT file_name, count(*) AS objects, count(*) FILTER (in_a) AS found_a, "
            f"count(*) FILTER (in_b) AS found_b, count(*) FILTER (in_b AND NOT in_a) AS gained, "
            f"count(*) FILTER (in_a AND NOT in_b) AS lost FROM ({pairs}) GROUP BY file_name "
            "ORDER BY gained - lost DESC, file_name",
            params,
        )
        changed = self.frame(
            f"SELECT *, CASE WHEN in_b THEN 'gained' ELSE 'lost' END AS change FROM ({pairs}) "
            "WHERE in_a != in_b ORDER BY change, size_input, file_name",
            params,
        )
        return per_image, changed


def _literal(text: str) -> str:
    return text.replace("'", "''")


def _bucket(name: str) -> str:
    if name not in BUCKETS:
        raise ValueError(f"bucket must be one of {BUCKETS}, got {name!r}")
    return name
