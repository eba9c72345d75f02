"""Dataset: a whole COCO dataset analysed once and stored; misses by size and why, the images
with the most, a gallery of missed objects, entropy distributions, and two runs compared."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import streamlit as st

from pages import _analysis as data
from pages import _keys as keys
from pages import _loaders as loaders
from pages import _shared as shared
from pages import _widgets as widgets
from sodviz.analysis.errors import MISS_TYPES
from sodviz.analysis.job import BackgroundJob, plan_job, planned_run
from sodviz.analysis.queries import BUCKETS, IMAGE_SORTS
from sodviz.analysis.settings import REFINEMENTS, AnalysisSettings
from sodviz.analysis.store import list_runs
from sodviz.detector.inference import run_inference
from sodviz.evaluation.coco import category_names
from sodviz.imageio import MAX_SIDE
from sodviz.serving.access import PathNotAllowed
from sodviz.views.dataset import BUCKET_TITLES, entropy_distributions, error_figure, object_patch
from sodviz.views.palette import CHANGE_RGB

shared.init_state()
shared.sidebar()
st.title("Dataset")
state = st.session_state
detector = loaders.current_detector()
sources = data.sources()
if state.get(keys.DATASET_SOURCE) not in sources:
    state[keys.DATASET_SOURCE] = next(iter(sources))
left, right = st.columns([3, 1])
source = left.selectbox(
    "Dataset (COCO annotations and their image folder)", list(sources), key=keys.DATASET_SOURCE
)
store = loaders.allowed_or_stop(right.text_input("Store folder", key=keys.DATASET_STORE), write=True,
                               what="The store folder")  # fmt: skip
annotations, images = sources[source]
dataset = str(annotations.resolve())
detector = loaders.prompted(detector, category_names(annotations))  # open vocabulary: the data's classes

with widgets.controls("Analyse"):
    a, b, c, g, d = st.columns([2, 2, 1, 1, 1])
    a.multiselect("Refinements", list(REFINEMENTS), key=keys.DATASET_METHODS)
    g.number_input("Gate (uncertain queries; 0: off)", 0, 300, key=keys.VICROP_GATE,
                   help="ViCrop-Det's gate, shared with the ViCrop page: vicrop_gated refines an image only "
                   "when at least this many queries score 0.1-0.5; the images table shows its "
                   "decision.")  # fmt: skip
    b.multiselect(
        "Budgets (forward passes, the full image included)", list(range(2, 9)), key=keys.DATASET_BUDGETS
    )
    c.number_input("Score threshold", 0.0, 1.0, step=0.05, key=keys.DATASET_THRESHOLD)
    start = d.button("Analyse the dataset", type="primary", help="Runs the current model over every image "
                     "not stored yet; what is stored is reused.")  # fmt: skip


def start_job() -> None:
    """The analysis of this dataset with these settings, in the background (once at a time)."""
    try:
        settings = AnalysisSettings(
            score_threshold=float(state[keys.DATASET_THRESHOLD]),
            input_size=state[keys.INPUT_SIZE] or None, methods=tuple(state[keys.DATASET_METHODS]),
            budgets=tuple(state[keys.DATASET_BUDGETS]) or (3,),
            gate_min_uncertain=int(state[keys.VICROP_GATE]),
        )  # fmt: skip
    except ValueError as error:
        st.error(f"Could not analyse {source}: {error}")
        return
    run_key = planned_run(detector, annotations, settings)
    running = data.jobs().get(run_key)
    if running is not None and running[1].running:
        st.info("This analysis is running already.")
        return
    make_plan = partial(plan_job, detector, annotations, images, settings, store=store,
                        model_source=loaders.model_path(loaders.model_source()))  # fmt: skip
    data.jobs()[run_key] = (dataset, BackgroundJob(make_plan, detector))


if start:
    start_job()


@st.fragment(run_every=1.0)
def job_status() -> None:
    """Progress and cancel of this dataset's jobs; reruns the page when one finishes."""
    for run, (job_dataset, job) in list(data.jobs().items()):
        if job_dataset != dataset:
            continue
        done, total = job.progress
        if job.running:
            bar, stop = st.columns([5, 1])
            text = (
                "Reading and hashing the images ..." if job.phase == "planning"
                else f"Analysing {done} / {total} images ({run[:8]}) ..."
            )  # fmt: skip
            bar.progress(done / total if total else 0.0, text=text)
            if stop.button("Cancel", key=f"cancel_{run}"):
                job.cancel()
        elif data.jobs().pop(run, None) is not None:  # one session reports it; the others just rerun
            if job.error:
                state["_dataset_error"] = f"Could not analyse {source}: {job.error}"
            else:
                state["_dataset_message"] = job.summary.text()
            st.rerun()
        else:
            st.rerun()


job_status()
if state.get("_dataset_message"):
    st.success(state.pop("_dataset_message"))
if state.get("_dataset_error"):
    st.error(state.pop("_dataset_error") + " What was written is kept; start it again to go on.")

runs = [r for r in list_runs(store) if r.get("annotations") == dataset]
if not runs:
    st.info(
        f"Nothing stored for {source} yet: press **Analyse the dataset** (or run `python -m sodviz analyze`)."
    )
    st.stop()
analysis = data.reader(store, tuple(r["run"] for r in runs))
analysis.refresh()
by_id = {r["run"]: r for r in runs}


def describe(run: str) -> str:
    meta = by_id[run]
    settings = meta["settings"]
    refinements = ", ".join(f"{m}@{b}" for m in settings["methods"] for b in settings["budgets"]) or "none"
    return (
        f"{meta['model']} · threshold {settings['score_threshold']} · refinements {refinements} · {run[:8]}"
    )


mine = [r["run"] for r in runs if r.get("model_hash") == detector.content_hash] or [runs[0]["run"]]
run = st.selectbox("Stored run", list(by_id), index=list(by_id).index(mine[0]), format_func=describe)
meta = by_id[run]
done, total = analysis.progress(run)
st.caption(f"{done} of {total} images stored, created {meta['created']} ({data.store_path(store, run)}).")
if meta.get("model_hash") != detector.content_hash:
    st.caption(f"This run is of `{meta['model']}`, not the current model: its patches use that model.")
methods = analysis.methods(run)
if not methods:
    st.info("No image of this run is stored yet: the first batch is on its way.")
    st.stop()
if state.get("dataset_summary_method") not in methods:
    state["dataset_summary_method"] = "base"
input_size = meta["settings"].get("input_size")

st.subheader("By size (AI-TOD buckets, model-input pixels)")
method = st.radio("Detections of", methods, horizontal=True, key="dataset_summary_method")
objects = int(analysis.frame("SELECT count(*) AS n FROM objects WHERE run = ?", [run])["n"][0])
asked = state.pop("_dataset_ap_asked", False)
table, scored = data.summary(analysis, run, method, objects=objects, asked=asked)
if not scored:
    st.caption(f"AP is left out for now: pycocotools needs minutes for {objects:,} objects (about 3 min "
               "for 100,000 on this 2-core machine); recall and the misses are exact.")  # fmt: skip
    if st.button("Compute AP (pycocotools)"):
        state["_dataset_ap_asked"] = True
        st.rerun()
st.dataframe(
    table[["bucket", "objects", "found", "recall", "AP", "AP50", *MISS_TYPES]], hide_index=True,
    column_config={k: st.column_config.NumberColumn(format="%.3f") for k in ("recall", "AP", "AP50")},
)  # fmt: skip
st.plotly_chart(error_figure(table), key="dataset_errors")
skipped = analysis.frame("SELECT file_name, reason FROM skipped WHERE run = ?", [run])
if len(skipped):
    st.warning(
        f"{len(skipped)} images were skipped (missing or unreadable); they are retried on the next run."
    )
    st.dataframe(skipped, hide_index=True)

st.subheader("Images")
f1, f2, f3, f4 = st.columns(4)
bucket = f1.selectbox("With a miss of size", ["all", *BUCKETS], key=keys.DATASET_BUCKET,
                      format_func=lambda b: BUCKET_TITLES.get(b, "any size"))  # fmt: skip
error = f2.selectbox("With a miss of type", ["all", *MISS_TYPES], key=keys.DATASET_ERROR,
                     format_func=lambda e: "any type" if e == "all" else e)  # fmt: skip
sort = f3.selectbox("Sort by", list(IMAGE_SORTS), key=keys.DATASET_SORT)
descending = f4.toggle("Largest first", value=True, key="dataset_descending")
images_table = analysis.image_table(
    run, methods=[m for m in methods if m != "base"], bucket=None if bucket == "all" else bucket,
    error=None if error == "all" else error, sort=sort, descending=descending,
)  # fmt: skip
# keyed by what the table shows: a selection never points into another filter's rows
table_key = f"dataset_image_table_{run}_{bucket}_{error}_{sort}_{descending}"
picked = st.dataframe(
    images_table, hide_index=True, on_select="rerun", selection_mode="single-row", key=table_key
)
rows = picked.selection.rows if picked else []
if rows and rows[0] < len(images_table):
    name = images_table.iloc[rows[0]]["file_name"]
    current = (
        state.get(keys.IMAGE_KIND) == "upload"
        and (state.get(keys.IMAGE_UPLOAD) or ("",))[0] == Path(name).name
    )
    if not current or state.get("_dataset_opened") != (run, name):
        data.open_image(annotations, images, name, input_size=input_size)
        state["_dataset_opened"] = (run, name)
        st.rerun()  # the sidebar, drawn first, names the new image too
    st.caption(f"**{name}** is now the current image, with its ground truth, on every page.")
same_model = meta.get("model_hash") == detector.content_hash
try:
    run_model = detector if same_model else loaders.cached_detector(loaders.model_path(meta["model"]))
except (FileNotFoundError, ValueError, ImportError, OSError) as problem:
    run_model = None
    st.caption(
        f"The run's model `{meta['model']}` does not load here ({problem}): patches without attention."
    )


def gallery(rows, *, key: str, colour_of=None, attention: bool = True) -> None:
    """Zoomed patches of objects, the nearest query's attention over each; a button opens one on Attention."""
    if not len(rows):
        st.info("No object matches these filters.")
        return
    model = run_model if attention else None
    columns = st.columns(6)
    for i, row in enumerate(rows.itertuples()):
        try:
            path = loaders.dataset_file(images, row.file_name)
        except PathNotAllowed:  # a served app reads a dataset's images only inside its folder
            continue
        if not path.is_file():
            continue
        image = data.image_of(str(path))
        result = run_inference(model, image, input_size=input_size) if model is not None else None
        colour = {"rgb": colour_of(row)} if colour_of else {}
        box = [row.x0, row.y0, row.x1, row.y1]
        patch = object_patch(image, box, result=result, query=int(row.nearest_query), **colour)
        with columns[i % 6]:
            widgets.image(
                st, patch, caption=f"{row.file_name} · {row.size_input:.1f} px · {row.error or row.category}"
            )
            if st.button("Open on Attention", key=f"{key}_{i}"):
                # the stored query is the current model's on the same pixels (uploads over MAX_SIDE shrink)
                query = int(row.nearest_query) if same_model and max(image.shape[:2]) <= MAX_SIDE else None
                data.open_image(annotations, images, row.file_name, input_size=input_size, query=query)
                st.switch_page("pages/attention.py")


st.subheader("Missed objects")
g1, g2 = st.columns(2)
gallery_bucket = g1.selectbox("Size", ["all", *BUCKETS], key="dataset_gallery_bucket",
                              format_func=lambda b: BUCKET_TITLES.get(b, "any size"))  # fmt: skip
gallery_error = g2.selectbox("Why", ["all", *MISS_TYPES], key="dataset_gallery_error",
                             format_func=lambda e: "any reason" if e == "all" else e)  # fmt: skip
missed = analysis.missed_objects(
    run, bucket=None if gallery_bucket == "all" else gallery_bucket,
    error=None if gallery_error == "all" else gallery_error, limit=12,
)  # fmt: skip
st.caption(
    "Object box thick (orange), the nearest query's box thin (cyan), its sampling points or attention map."
)
gallery(missed, key="missed")

st.subheader("Attention entropy")
st.plotly_chart(
    entropy_distributions(data.entropy_rows(analysis, run, analysis.version(run))), key="dataset_entropy"
)

st.subheader("Compare two runs")
options = [(r, m) for r in by_id for m in analysis.methods(r)]
label = {o: f"{by_id[o[0]]['model']} · {o[1]} ({o[0][:6]})" for o in options}
c1, c2 = st.columns(2)
first = c1.selectbox("A", options, index=options.index((run, "base")), format_func=label.get, key="dataset_a")
refined = sorted(
    (o for o in options if o[0] == run and o[1] != "base"), key=lambda o: not o[1].startswith("vicrop")
)
default_b = refined[0] if refined else options[-1]
second = c2.selectbox("B", options, index=options.index(default_b), format_func=label.get, key="dataset_b")
per_image, changed = data.compare(
    analysis, first, second, (analysis.version(first[0]), analysis.version(second[0]))
)
gained, lost = int(per_image["gained"].sum()), int(per_image["lost"].sum())
st.caption(f"B finds {gained} objects A misses, and misses {lost} that A finds.")
st.dataframe(per_image, hide_index=True, key="dataset_compare")
st.markdown("**Objects gained and lost** (green: B only, red: A only)")
gallery(changed.head(12), key="changed", attention=False, colour_of=lambda row: CHANGE_RGB[row.change])
