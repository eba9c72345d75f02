"""What the pages show, computed from one result: detections view, attention view, figures, drawing."""

from __future__ import annotations

import numpy as np
import pytest

from sodviz.attention.maps import query_sampling_points
from sodviz.boxes import crop_window
from sodviz.detector.inference import run_inference
from sodviz.evaluation.ground_truth import GroundTruth
from sodviz.views.detections import aggregate_overlay, detections_view, query_attention_view
from sodviz.views.figures import detections_figure, sampling_points_figure
from sodviz.views.render import draw_match, draw_sampling_points, tile_images


def test_detections_view_filters_and_tables(detector, image):
    result = run_inference(detector, image, cache=None)
    view = detections_view(result, score_threshold=0.0, top_n=7)
    assert len(view.detections) == len(view.table) == view.entropy.size == 7
    assert view.match is None and "match" not in view.table[0]
    assert [row["query"] for row in view.table] == view.detections.data["query_index"].tolist()
    assert all(0 <= row["entropy"] <= np.log(result.num_queries * 1e6) for row in view.table)
    assert detections_view(result, score_threshold=1.01).table == []  # the empty case


def test_detections_view_matches_ground_truth(tiny_detectors, image):
    result = run_inference(tiny_detectors["rt_detr"], image, cache=None)
    top = detections_view(result, score_threshold=0.0, top_n=1).detections
    truth = GroundTruth(
        boxes_xyxy=np.concatenate([top.xyxy, [[0, 0, 3, 3]]]).astype(np.float32),
        class_names=np.array([result.class_names[top.class_id[0]], "other"]),
    )
    view = detections_view(result, score_threshold=0.0, top_n=1, truth=truth)
    assert view.table[0]["match"] == "TP"
    assert view.match.missed.tolist() == [False, True]


def test_query_attention_view(detector, image):
    result = run_inference(detector, image, cache=None)
    query = int(np.argmax(result.scores))
    view = query_attention_view(result, image, query=query, layer=None, head=0, opacity=0.4)
    assert view.heat_overlay.shape[0] == image.shape[0] and view.heat_overlay.dtype == np.uint8
    assert view.heat_overlay.shape[1] > image.shape[1]  # the colour bar on its right
    assert (view.points is None) == (not detector.family.deformable)
    assert (view.points_overlay is None) == (view.points is None)
    assert view.heads_grid.ndim == 3 and view.entropy >= 0
    x0, y0, x1, y1 = view.window
    assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]
    overlay = aggregate_overlay(
        result, image, detections_view(result, score_threshold=0.0).detections, layer=-1, opacity=0.5
    )
    assert overlay.shape[0] == image.shape[0] and overlay.shape[1] > image.shape[1]  # + colour bar


def test_sampling_points_carry_the_map_weights(deformable_detector, image):
    result = run_inference(deformable_detector, image, cache=None)
    points, weights, levels, heads = query_sampling_points(result, 0, layer=None, head=None)
    assert weights.sum() == pytest.approx(1.0, abs=1e-4)  # mean over layers and heads
    assert len(points) == len(weights) == len(levels) == len(heads) and (weights > 0).all()
    points, weights, _, heads = query_sampling_points(result, 0, layer=-1, head=1)
    assert set(heads.tolist()) == {1} and weights.sum() == pytest.approx(1.0, abs=1e-4)


def test_sampling_points_refused_for_dense_attention(tiny_detectors, image):
    result = run_inference(tiny_detectors["detr"], image, cache=None)
    with pytest.raises(ValueError, match="deformable attention only"):
        query_sampling_points(result, 0)


def test_figures_carry_queries_for_picking(tiny_detectors, image):
    result = run_inference(tiny_detectors["rt_detr"], image, cache=None)
    detections = detections_view(result, score_threshold=0.0, top_n=5).detections
    status = np.array(["TP", "FP", "TP", "FP", "FP"])
    figure = detections_figure(
        image, detections, status=status, missed_xyxy=np.zeros((2, 4)), selected_query=-1
    )
    names = [trace.name for trace in figure.data[1:]]
    assert names == ["TP", "FP", "FN (missed)", "FN (missed)", "pick a query"]  # outline, ring
    assert [t.showlegend for t in figure.data[1:]] == [None, None, None, False, False]  # one entry each
    assert figure.layout.legend.y == 1.0 and figure.layout.margin.t > 0  # above the image, not on it
    pick = figure.data[-1]
    assert pick.customdata.tolist() == detections.data["query_index"].tolist()
    figure = detections_figure(image, detections, selected_query=int(detections.data["query_index"][2]))
    assert figure.data[-1].name.startswith("query ")
    points = sampling_points_figure(
        image, np.array([[5.0, 5.0], [9.0, 9.0]]), np.array([0.7, 0.3]), np.array([0, 2])
    )
    assert [trace.name for trace in points.data[1:]] == ["level 0", "level 2"]  # no box asked for
    boxed = sampling_points_figure(
        image, np.array([[5.0, 5.0]]), np.array([1.0]), np.array([0]), box_xyxy=np.array([[0, 0, 9, 9]])
    )
    shown = [t.name for t in boxed.data[1:] if t.showlegend is not False]
    assert shown.count("detection") == 1  # drawn under and over the points, listed once


def test_entropy_figure_plots_entropy_against_score_by_status_and_carries_queries(tiny_detectors, image):
    from sodviz.views.figures import entropy_figure

    result = run_inference(tiny_detectors["rt_detr"], image, cache=None)
    view = detections_view(result, score_threshold=0.0, top_n=4)
    status = np.array(["TP", "FP", "FP", "TP"])
    figure = entropy_figure(view.detections, view.entropy, status=status)
    assert [t.name for t in figure.data] == ["TP", "FP"]
    tp = figure.data[0]
    np.testing.assert_allclose(tp.x, view.detections.confidence[[0, 3]])
    np.testing.assert_allclose(tp.y, view.entropy[[0, 3]])
    assert tp.customdata.tolist() == view.detections.data["query_index"][[0, 3]].tolist()


def test_drawing_helpers(image):
    import supervision as sv

    detections = sv.Detections(xyxy=np.array([[10, 10, 40, 30]], np.float32), class_id=np.array([0]))
    drawn = draw_match(image, detections, status=np.array(["FP"]), missed_xyxy=np.array([[50, 50, 80, 90]]))
    assert tuple(drawn[10, 25]) == (214, 39, 40)  # the false positive's red edge
    assert tuple(drawn[70, 50]) == (255, 159, 28)  # the missed object's orange edge
    dots = draw_sampling_points(image, np.array([[100.0, 60.0]]), np.array([1.0]), np.array([1]))
    assert tuple(dots[60, 100]) == (255, 204, 0)  # level 1 colour at the point
    assert crop_window(np.array([0, 0, 4, 4]), (120, 200), factor=6, min_side=96) == (0, 0, 96, 96)
    assert crop_window(np.array([190, 110, 199, 119]), (120, 200), factor=6, min_side=96) == (
        104,
        24,
        200,
        120,
    )
    mosaic = tile_images([image, image, image], columns=2, tile=32)
    assert mosaic.shape == (2 * 38, 2 * 38, 3)  # 32 px cells, 3 px padding around each


def test_sampling_points_figure_zooms_to_a_window(image):
    points = sampling_points_figure(
        image, np.array([[5.0, 5.0]]), np.array([1.0]), np.array([0]), view_xyxy=(10, 20, 60, 70)
    )
    assert list(points.layout.xaxis.range) == [10, 60] and list(points.layout.yaxis.range) == [70, 20]
    whole = sampling_points_figure(image, np.array([[5.0, 5.0]]), np.array([1.0]), np.array([0]))
    assert list(whole.layout.xaxis.range) == [0, image.shape[1]]


def test_erf_point_picker_carries_input_pixels():
    from sodviz.views.erf import erf_point, point_picker_figure

    assert erf_point(None, (64, 128)) == [64.0, 32.0]  # the centre of a 128 x 64 input (x, y)
    assert erf_point([500, 10], (64, 128)) == [127, 10]  # kept inside
    picture = np.zeros((30, 90, 3), np.uint8)
    figure = point_picker_figure(picture, (64, 128), [64.0, 32.0])
    grid = next(trace for trace in figure.data if trace.name == "click a point")
    xy = np.array(grid.customdata)
    assert xy[:, 0].max() < 128 and xy[:, 1].max() < 64 and xy[:, 0].max() > xy[:, 1].max()
    np.testing.assert_array_equal(xy, np.stack([grid.x, grid.y], axis=1))


def test_colour_bar_shows_the_maps_range_and_compared_maps_share_one_scale(image):
    from sodviz.views.palette import colorize
    from sodviz.views.render import heat_range, overlay_heatmap, with_colorbar

    heat = np.linspace(0.0, 0.02, 200, dtype=np.float32)[None].repeat(120, axis=0)
    drawn = with_colorbar(image, heat_range(heat), "attention weight per feature cell")
    np.testing.assert_array_equal(drawn[:, : image.shape[1]], image)  # the image is untouched
    bar = drawn[:, image.shape[1] + 8 + 7]  # the middle column of the colour ramp
    rows = np.flatnonzero((bar != 255).any(axis=1) & (bar != 0).any(axis=1))
    top, bottom = bar[rows[0]], bar[rows[-1]]
    hot, cold = colorize(np.array([[1.0]]), "jet")[0, 0], colorize(np.array([[0.0]]), "jet")[0, 0]
    assert np.abs(top.astype(int) - hot).max() <= 12 and np.abs(bottom.astype(int) - cold).max() <= 12
    weak, strong = heat * 0.5, heat
    alone = [overlay_heatmap(image, m, opacity=1.0) for m in (weak, strong)]
    np.testing.assert_array_equal(alone[0], alone[1])  # each on its own scale: they look the same
    shared = heat_range(weak, strong)
    together = [overlay_heatmap(image, m, opacity=1.0, value_range=shared) for m in (weak, strong)]
    assert not np.array_equal(together[0], together[1])


def test_tiles_keep_each_crops_aspect_and_colour(image):
    from sodviz.views.render import fit_tile, tile_images

    fitted, factor = fit_tile(image, 100)  # 200x120 -> 100x60
    assert fitted.shape == (60, 100, 3) and factor == 0.5
    tall = np.zeros((300, 30, 3), np.uint8)
    mosaic = tile_images([tall], columns=1, tile=100, titles=["crop 0"], borders=[(31, 119, 180)])
    column = mosaic[3 + 18 + 50]  # a row through the tile's middle
    dark = np.flatnonzero((column == 0).all(axis=1))
    assert len(dark) == 10  # 30 px wide at a third: the aspect is kept, not squashed to 100x100
    assert (mosaic == (31, 119, 180)).all(axis=2).any()  # the crop's colour as its border


def test_heads_grid_draws_every_head_on_one_scale(tiny_detectors, image):
    from sodviz.attention.maps import query_attention_map
    from sodviz.views.render import heat_range, overlay_heatmap, tile_images

    result = run_inference(tiny_detectors["rt_detr"], image, cache=None)
    view = query_attention_view(result, image, query=0, layer=None, head=None, opacity=0.5)
    x0, y0, x1, y1 = view.window
    heads = [
        result.transform.grid_to_image(query_attention_map(result, 0, layer=None, head=h))[y0:y1, x0:x1]
        for h in range(result.attention.num_heads)
    ]
    shared = heat_range(*heads)
    assert any(heat_range(m) != shared for m in heads)  # the heads differ: one scale is a choice
    tiles = [overlay_heatmap(image[y0:y1, x0:x1], m, opacity=0.5, value_range=shared) for m in heads]
    expected = tile_images(tiles, columns=4, tile=160, titles=[f"head {h}" for h in range(len(heads))])
    np.testing.assert_array_equal(view.heads_grid[:, : expected.shape[1]], expected)


@pytest.mark.parametrize("family", ["deformable_detr", "detr"])
def test_the_attention_and_detections_views_are_cached_by_what_they_read(tiny_detectors, image, family):
    """With the app's view cache, a rerun with the same result, image and settings gets the drawn
    views back (the Attention page draws three images at full resolution on every rerun
    otherwise); any change of what a view reads draws it again: a stale view would show another
    query's, layer's or image's attention. The keys read the attention of the view's own queries
    only (a dense model's whole attention is too large to hash on every rerun)."""
    import copy
    from dataclasses import replace

    from sodviz.cache import InferenceCache
    from sodviz.types import DenseAttention

    detector, cache = tiny_detectors[family], InferenceCache(max_bytes=1 << 28)
    result = run_inference(detector, image, cache=None)
    again = run_inference(detector, image, cache=None)  # another object, the same content
    moved = replace(result, boxes_xyxy=result.boxes_xyxy + 1)
    truth = GroundTruth(boxes_xyxy=np.array([[10, 10, 30, 30]], np.float32), class_names=np.array(["x"]))

    def with_attention_of(query: int):
        """`result` with `query`'s attention changed (layer 0 moved onto head 0's first cell)."""
        attention = result.attention
        weights = attention.weights.copy()
        if isinstance(attention, DenseAttention):
            weights[0, :, query] = 0.0
            weights[0, :, query, 0, 0] = 1.0
            return replace(result, attention=replace(attention, weights=weights))
        weights[0, query] = weights[0, query, :, ::-1]  # the levels' weights swapped
        return replace(result, attention=replace(attention, weights=weights))

    def found(result=result, threshold=0.0, classes=None, top_n=5, truth=truth):
        return detections_view(
            result, score_threshold=threshold, classes=classes, top_n=top_n, truth=truth, cache=cache
        )

    first = found()
    assert found(again) is first and cache.used_bytes >= first.nbytes > 0
    assert detections_view(result, score_threshold=0.0, top_n=5, truth=truth).table == first.table
    queries = first.detections.data["query_index"].tolist()
    outside = next(q for q in range(result.num_queries) if q not in queries)
    assert found(with_attention_of(outside)) is first  # a query it does not show
    for changed in (found(moved), found(with_attention_of(queries[0])), found(threshold=0.01),
                    found(classes=[0]), found(top_n=4), found(truth=None)):  # fmt: skip
        assert changed is not first

    query, other = queries[:2]

    def view(result=result, image=image, query=query, layer=None, head=None, opacity=0.5):
        return query_attention_view(
            result, image, query=query, layer=layer, head=head, opacity=opacity, cache=cache
        )

    shown = view()
    assert view(again) is shown and shown.nbytes >= shown.heat_overlay.nbytes + shown.heads_grid.nbytes
    assert (shown.points is None) == (family == "detr")
    uncached = query_attention_view(result, image, query=query, layer=None, head=None, opacity=0.5)
    np.testing.assert_array_equal(uncached.heat_overlay, shown.heat_overlay)
    np.testing.assert_array_equal(uncached.heads_grid, shown.heads_grid)
    assert view(with_attention_of(other)) is shown
    flipped = image[::-1].copy()
    for changed in (view(moved), view(with_attention_of(query)), view(image=flipped), view(query=other),
                    view(layer=0), view(head=1), view(opacity=0.6)):  # fmt: skip
        assert changed is not shown

    def overlay(result=result, image=image, detections=first.detections, layer=None, opacity=0.5):
        return aggregate_overlay(result, image, detections, layer=layer, opacity=opacity, cache=cache)

    drawn = overlay()
    assert overlay(again) is drawn
    np.testing.assert_array_equal(
        aggregate_overlay(result, image, first.detections, layer=None, opacity=0.5), drawn
    )
    fewer, reweighted = first.detections[:-1], copy.deepcopy(first.detections)
    reweighted.confidence = reweighted.confidence[::-1].copy()  # the same queries, other weights
    for changed in (overlay(moved), overlay(with_attention_of(queries[-1])), overlay(image=flipped),
                    overlay(detections=fewer), overlay(detections=reweighted), overlay(layer=0),
                    overlay(opacity=0.6)):  # fmt: skip
        assert changed is not drawn


def test_shrink_fits_the_longer_side_and_the_width_and_leaves_a_fitting_image_alone(image):
    """One downscale for the report's images (longer side) and the pages' (Streamlit's width)."""
    from sodviz.views.render import shrink
    from sodviz.views.report import MAX_IMAGE_SIDE, report_image

    assert shrink(image, max_side=500, max_width=500) is image
    assert shrink(image, max_side=100).shape == (60, 100, 3)  # 120 x 200: the width is the longer side
    assert shrink(image[:, :100], max_side=60).shape == (60, 50, 3)  # 120 x 100: the height is
    assert shrink(image, max_width=50).shape == (30, 50, 3)
    assert shrink(image, max_side=100, max_width=50).shape == (30, 50, 3)  # the tighter limit wins
    tall = np.zeros((MAX_IMAGE_SIDE * 2, 100, 3), np.uint8)
    assert report_image(tall).shape == (MAX_IMAGE_SIDE, 50, 3)
