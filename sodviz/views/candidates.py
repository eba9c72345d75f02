"""What the Candidates page shows: one object's candidates ranked by confidence, ACS-Free and
ACS-Learned, the layer x head correlation heat map, entropy against IoU."""

from __future__ import annotations

import cv2
import numpy as np
import plotly.graph_objects as go

from sodviz.acs.candidates import FEATURES, FULL_IMAGE, Candidates
from sodviz.acs.selectors import FittedAcs, free_scores
from sodviz.attention.maps import query_attention_map
from sodviz.boxes import crop_window
from sodviz.crops.redetect import CropDetections
from sodviz.evaluation.buckets import AITOD_BUCKETS, bucket_masks
from sodviz.types import InferenceResult
from sodviz.views.palette import METHOD_RGB
from sodviz.views.render import heat_range, overlay_heatmap, tile_images, with_colorbar


def object_table(candidates: Candidates, fitted: FittedAcs, object_index: int) -> list[dict]:
    """One row per candidate of an object: query, confidence, IoU, ACS-Free entropy, predicted IoU
    and its rank under each method (1 = chosen)."""
    rows = np.flatnonzero(candidates.object_index == object_index)
    values = {
        "confidence": candidates.confidence[rows],
        "ACS-Free": free_scores(candidates, fitted.heads)[rows],
        "ACS-Learned": fitted.regressor.predict(candidates)[rows],
    }
    table = []
    for position, row in enumerate(rows):
        crop = int(candidates.crop_index[row])
        entry = {"source": "image" if crop == FULL_IMAGE else f"crop {crop}",
                 "query": int(candidates.query_index[row]), "confidence": float(candidates.confidence[row]),
                 "iou": float(candidates.iou[row]), "entropy": float(-values["ACS-Free"][position]),
                 "predicted_iou": float(values["ACS-Learned"][position])}  # fmt: skip
        for method, scores in values.items():
            ahead = (scores > scores[position]).sum()
            entry[f"rank {method}"] = int(ahead) + 1
        table.append(entry)
    return table


def candidates_picture(
    image: np.ndarray, result: InferenceResult, candidates: Candidates, object_index: int, table: list[dict],
    *, crops: CropDetections | None = None, tile: int = 200,
) -> np.ndarray:  # fmt: skip
    """uint8 RGB mosaic: the object's neighbourhood with every candidate box (the one each method
    picks in its colour, the others white), then each candidate's last-layer attention there (a
    crop's candidate: its crop's attention, zero outside the crop). `table`: `object_table`."""
    rows = np.flatnonzero(candidates.object_index == object_index)
    boxes = candidates.boxes_xyxy[rows]
    union = np.concatenate([boxes[:, :2].min(0), boxes[:, 2:].max(0)])
    x0, y0, x1, y1 = crop_window(union, image.shape[:2], factor=4.0, min_side=64)
    scene = image[y0:y1, x0:x1].copy()
    chosen = {
        method: next(i for i, r in enumerate(table) if r[f"rank {method}"] == 1) for method in METHOD_RGB
    }
    for position, box in enumerate(boxes):
        colors = [METHOD_RGB[m] for m, c in chosen.items() if c == position] or [(255, 255, 255)]
        for offset, color in enumerate(colors):
            a = (int(box[0] - x0) - offset, int(box[1] - y0) - offset)
            b = (int(box[2] - x0) + offset, int(box[3] - y0) + offset)
            cv2.rectangle(scene, a, b, color, 1)
    tiles, titles, heats = [scene], ["candidates"], []
    for row, entry in zip(rows, table, strict=True):
        heat = _attention_in_image(
            result, crops, int(candidates.crop_index[row]), int(candidates.query_index[row])
        )
        heats.append(heat[y0:y1, x0:x1])
        source = "" if entry["source"] == "image" else entry["source"].replace("crop ", "c") + " "
        titles.append(f"{source}q{entry['query']} IoU {entry['iou']:.2f}")
    shared = heat_range(*heats)  # the candidates' maps are compared: one scale
    tiles += [overlay_heatmap(image[y0:y1, x0:x1], h, opacity=0.55, value_range=shared) for h in heats]
    mosaic = tile_images(tiles, columns=min(len(tiles), 4), tile=tile, titles=titles)
    return with_colorbar(mosaic, shared, "last-layer attention weight per feature cell") if heats else mosaic


def _attention_in_image(
    result: InferenceResult, crops: CropDetections | None, crop: int, query: int
) -> np.ndarray:
    """float32 `(H, W)`: a query's last-layer attention on the original image; a crop's query's
    map is resampled onto its crop and zero elsewhere."""
    if crop == FULL_IMAGE:
        return result.transform.grid_to_image(query_attention_map(result, query, layer=-1))
    if crops is None:
        raise ValueError(f"candidate from crop {crop}, but no crops were given")
    crop_result, (x0, y0, x1, y1) = crops.results[crop], crops.crops_xyxy[crop]
    heat = np.zeros(result.transform.image_hw, np.float32)
    heat[y0:y1, x0:x1] = crop_result.transform.grid_to_image(
        query_attention_map(crop_result, query, layer=-1)
    )
    return heat


def correlation_figure(fitted: FittedAcs, feature: str = "entropy") -> go.Figure:
    """Pearson r of a feature with IoU per (layer, head); ACS-Free's heads marked."""
    values = fitted.correlations["pearson"][..., FEATURES.index(feature)]
    hover = "layer %{y}, head %{x}: r = %{z:.3f}<extra></extra>"
    figure = go.Figure(
        go.Heatmap(z=values, colorscale="RdBu", zmid=0, colorbar=dict(title="r"), hovertemplate=hover)
    )
    layers, heads = zip(*fitted.heads, strict=True)
    figure.add_scatter(x=list(heads), y=list(layers), mode="markers", name="ACS-Free heads",
                       marker=dict(symbol="x", size=12, color="black"))  # fmt: skip
    figure.update_layout(xaxis=dict(title="head", dtick=1), yaxis=dict(title="decoder layer", dtick=1),
                         height=320, template="plotly_white", margin=dict(t=30))  # fmt: skip
    return figure


def entropy_scatter(fitted: FittedAcs) -> go.Figure:
    """Each fitted candidate: its mean entropy on ACS-Free's heads against its IoU, by size bucket."""
    candidates = fitted.candidates
    entropy = -free_scores(candidates, fitted.heads)
    figure = go.Figure(layout=dict(xaxis=dict(title="mean attention entropy on ACS-Free's heads"),
                                   yaxis=dict(title="IoU with the object"), height=360,
                                   template="plotly_white", margin=dict(t=30)))  # fmt: skip
    for bucket, mask in bucket_masks(candidates.object_size, AITOD_BUCKETS).items():
        if mask.any():
            figure.add_scattergl(x=entropy[mask], y=candidates.iou[mask], mode="markers", name=bucket,
                                 marker=dict(size=4, opacity=0.6))  # fmt: skip
    return figure
