"""Mutation check: break each guarded mechanism once, run the tests that guard it, restore.

    .venv/bin/python tests/mutation_check.py [NAME_PART ...]

Each line prints OK when the tests fail on the mutated code and pass on the real code. The file
is edited in place and restored afterwards (also on Ctrl-C); run it on a clean tree.
"""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
M = [
    (
        "capture: level (h, w) swapped",
        "sodviz/detector/capture.py",
        "record.level_shapes = [(int(h), int(w)) for h, w in",
        "record.level_shapes = [(int(w), int(h)) for h, w in",
        ["tests/detector/test_capture.py::test_level_shapes_are_the_feature_grids_of_a_non_square_input"],
    ),
    (
        "capture: sampling hooks never fire (records exist anyway)",
        "sodviz/detector/capture.py",
        "self._hooks.add(module.attn, _bind(self._on_sampling, record), with_kwargs=True)",
        "pass",
        ["tests/detector/test_capture.py::test_hooks_removed_after_forward"],
    ),
    (
        "crops: image edges count as cuts",
        "sodviz/crops/redetect.py",
        "    if x0 > 0:\n        cut |= boxes[:, 0] <= margin\n    if y0 > 0:",
        "    if True:\n        cut |= boxes[:, 0] <= margin\n    if True:",
        ["tests/crops/test_crops.py::test_only_crop_edges_inside_the_image_cut_boxes"],
    ),
    (
        "crops: default border factor 0.5 -> 1.0",
        "sodviz/crops/redetect.py",
        "border_factor: float = 0.5",
        "border_factor: float = 1.0",
        ["tests/crops/test_crops.py::test_cut_boxes_are_halved_by_default_and_dropped_at_factor_zero"],
    ),
    (
        "inference: the cache ignored (a rerun per page)",
        "sodviz/detector/inference.py",
        "    return cached(\n        cache,",
        "    return cached(\n        None,",
        ["tests/test_app.py::test_input_size_reruns_the_detector_once_per_size"],
    ),
    (
        "detections view: class filter dropped",
        "sodviz/views/detections.py",
        "to_detections(result, score_threshold=score_threshold, classes=classes)",
        "to_detections(result, score_threshold=score_threshold, classes=None)",
        ["tests/test_app.py::test_detections_page_controls"],
    ),
    (
        "windows: SAE and intensity swapped in the joint score",
        "sodviz/crops/windows.py",
        "joint_score(normalised, intensity, alpha=alpha, beta=beta)",
        "joint_score(intensity, normalised, alpha=alpha, beta=beta)",
        ["tests/crops/test_windows.py"],
    ),
    (
        "entropy: no log(N) normalisation of SAE",
        "sodviz/attention/entropy.py",
        "entropy / np.log(np.maximum(count, 2)), 0.0)",
        "entropy, 0.0)",
        [
            "tests/crops/test_windows.py::test_uniform_attention_has_maximal_entropy_everywhere",
            "tests/crops/test_windows.py::test_window_entropy_is_normalised_and_the_joint_score_weights_each_term_by_its_exponent",
        ],
    ),
    (
        "buckets: AI-TOD 8 px -> 9 px",
        "sodviz/evaluation/buckets.py",
        '"vt": (0, 8), "t": (8, 16)',
        '"vt": (0, 9), "t": (9, 16)',
        ["tests/evaluation/test_evaluation.py::test_aitod_bucket_bounds_in_both_frames"],
    ),
    (
        "buckets: AI-TOD 16 px -> 17 px",
        "sodviz/evaluation/buckets.py",
        '"t": (8, 16), "s": (16, 32)',
        '"t": (8, 17), "s": (17, 32)',
        ["tests/evaluation/test_evaluation.py::test_aitod_bucket_bounds_in_both_frames"],
    ),
    (
        "buckets: AI-TOD 32 px -> 33 px",
        "sodviz/evaluation/buckets.py",
        '"s": (16, 32), "m": (32, math.inf)}',
        '"s": (16, 33), "m": (33, math.inf)}',
        ["tests/evaluation/test_evaluation.py::test_aitod_bucket_bounds_in_both_frames"],
    ),
    (
        "boxes: crop offset x / y swapped",
        "sodviz/boxes.py",
        "return (np.asarray(boxes_xyxy, np.float64).reshape(-1, 4) + np.array([x0, y0, x0, y0]))",
        "return (np.asarray(boxes_xyxy, np.float64).reshape(-1, 4) + np.array([y0, x0, y0, x0]))",
        [
            "tests/acs/test_acs.py::test_crop_queries_join_the_objects_they_overlap_in_image_pixels",
            "tests/crops/test_crops.py::test_crop_boxes_map_back_to_the_image",
        ],
    ),
    (
        "coco: AP50 at 1 detection per image",
        "sodviz/evaluation/coco.py",
        '"AP50": _mean_ap(precision[0, :, :, 0, -1])',
        '"AP50": _mean_ap(precision[0, :, :, 0, 0])',
        ["tests/evaluation/test_evaluation.py::test_known_cases"],
    ),
    (
        "acs: the fit keyed with the fusion settings",
        "sodviz/acs/labelling.py",
        "planning = None if crops is None else crops.without_fusion()",
        "planning = crops",
        ["tests/acs/test_acs.py::test_acs_fit_is_keyed_without_the_fusion_settings"],
    ),
    (
        "acs: objects sorted largest first",
        "sodviz/acs/candidates.py",
        "order = np.lexsort((objects, self.object_size[first]))",
        "order = np.lexsort((objects, -self.object_size[first]))",
        ["tests/acs/test_acs.py::test_objects_by_size_smallest_first"],
    ),
    (
        "inference: softmax keeps the no-object column",
        "sodviz/detector/inference.py",
        "logits.softmax(dim=-1)[..., :-1]",
        "logits.softmax(dim=-1)[..., 1:]",
        [
            "tests/detector/test_inference.py::test_decode_predictions_sigmoid_or_softmax_without_the_no_object_class"
        ],
    ),
    (
        "layout: an upward import (crops -> views)",
        "sodviz/crops/fusion.py",
        "from sodviz.boxes import box_size\n",
        "from sodviz.boxes import box_size\nfrom sodviz.views.palette import STATUS_RGB  # noqa: F401\n",
        ["tests/test_layout.py::test_subpackages_import_downwards_only"],
    ),
    (
        "fusion: merges absorb a claimed box without checking it against the grown box",
        "sodviz/crops/fusion.py",
        "if overlap_matrix(box, candidate, metric)[0, 0] >= threshold:",
        "if True:",
        ["tests/crops/test_fusion.py::test_a_claim_that_no_longer_matches_the_grown_box_is_dropped"],
    ),
    (
        "fusion: NMM not transitive (a claimed box keeps nothing for its keeper)",
        "sodviz/crops/fusion.py",
        "        keeper = int(keeper_of[index])\n",
        "        keeper = int(keeper_of[index])\n        if keeper != index:\n            continue\n",
        [
            "tests/crops/test_fusion.py::test_merges_are_sahis",
            "tests/crops/test_fusion.py::test_merges_differ_where_they_should",
        ],
    ),
    (
        "fusion: the old 32 px crop-size limit as the default",
        "sodviz/crops/fusion.py",
        "    max_refined_size: float | None = None\n",
        "    max_refined_size: float | None = 32.0\n",
        ["tests/crops/test_fusion.py::test_a_mid_size_crop_box_survives_fusion"],
    ),
    (
        "fusion: large full-image boxes not protected (merged with the rest)",
        "sodviz/crops/fusion.py",
        "protected, rest = original[large], original[~large]",
        "protected, rest = original[:0], original",
        ["tests/crops/test_fusion.py::test_a_large_full_image_detection_is_never_lost"],
    ),
    (
        "fusion: SAHI's switch to NMS at low score thresholds ignored",
        "sodviz/crops/fusion.py",
        'if self.low_score_nms and low and self.merge != "nms":',
        "if False:",
        ["tests/crops/test_fusion.py::test_sahis_switch_to_nms_at_low_score_thresholds"],
    ),
    (
        "slicing: overlap rounded where SAHI truncates",
        "sodviz/crops/slicing.py",
        "ys = _spans(height, side_h, int(overlap * side_h))",
        "ys = _spans(height, side_h, round(overlap * side_h))",
        ["tests/crops/test_fusion.py::test_slices_are_sahis"],
    ),
    (
        "slicing: fused with a crop-size limit (no longer SAHI's fusion)",
        "sodviz/crops/slicing.py",
        "fused = fuse_detections(base, sliced, fusion, scale=scale",
        "fused = fuse_detections(base, sliced, Fusion(max_refined_size=16), scale=scale",
        ["tests/crops/test_fusion.py::test_our_slicing_gives_sahis_ap"],
    ),
    (
        "redetect: crop boxes not clamped to their crop",
        "sodviz/crops/redetect.py",
        "np.clip(detections.xyxy.astype(np.float64), 0, [crop_w, crop_h, crop_w, crop_h])",
        "detections.xyxy.astype(np.float64)",
        ["tests/crops/test_crops.py::test_crop_boxes_are_clamped_to_their_crop"],
    ),
    (
        "vicrop: fill ignored (budget left unspent once the attention is covered)",
        "sodviz/crops/vicrop.py",
        "if config.fill and not (np.delete(scores, chosen) > 0).any():",
        "if False:",
        ["tests/crops/test_vicrop.py::test_fill_spends_the_budget_once_the_attention_is_covered"],
    ),
    (
        "validation: orphan annotations kept",
        "sodviz/evaluation/validation.py",
        "        if image is None:\n            reasons[_ORPHAN].append(label)",
        "        if image is None and False:\n            reasons[_ORPHAN].append(label)",
        ["tests/evaluation/test_validation.py", "tests/cli/test_bad_data.py"],
    ),
    (
        "validation: boxes outside the image not clipped",
        "sodviz/evaluation/validation.py",
        "        inside = _clip(box, image)",
        "        inside = box",
        ["tests/evaluation/test_validation.py", "tests/cli/test_bad_data.py"],
    ),
    (
        "validation: non-positive boxes kept",
        "sodviz/evaluation/validation.py",
        "        if box[2] <= 0 or box[3] <= 0:",
        "        if box[2] < -1e9:",
        ["tests/evaluation/test_validation.py", "tests/cli/test_bad_data.py"],
    ),
    (
        "validation: notices not shown by the CLI",
        "sodviz/notices.py",
        "        warnings.warn(notice, DataNotice, stacklevel=3)",
        "        pass",
        ["tests/cli/test_bad_data.py"],
    ),
    (
        "imageio: predict decodes at full size",
        "sodviz/imageio.py",
        "    decoded = read_image(path, max_side=MAX_SIDE)\n    notify",
        "    decoded = read_image(path)\n    notify",
        ["tests/cli/test_bad_data.py"],
    ),
    (
        "imageio: predict boxes left in decoded pixels",
        "sodviz/cli/commands.py",
        "        detections.xyxy / scale,",
        "        detections.xyxy,",
        ["tests/cli/test_bad_data.py"],
    ),
    (
        "app: picks kept when the image changes",
        "pages/_shared.py",
        "    if st.session_state.get(PICK_CONTEXT) == context:\n        return",
        "    if True:\n        return",
        ["tests/test_app.py::test_picks_are_forgotten_when_the_image_model_or_input_size_changes"],
    ),
    (
        "views: heads on their own scales",
        "sodviz/views/detections.py",
        "opacity=opacity, value_range=shared) for m in heads]",
        "opacity=opacity) for m in heads]",
        ["tests/views/test_views.py"],
    ),
    (
        "views: fusion changes count replacements as additions",
        "sodviz/views/vicrop.py",
        "    replaced = int(overlap.any(axis=0).sum())",
        "    replaced = 0",
        ["tests/crops/test_vicrop.py"],
    ),
    (
        "letterbox: boxes read as relative to the resized image",
        "sodviz/detector/inference.py",
        "    if transform.letterboxed:\n        input_h, input_w = transform.input_hw",
        "    if False:\n        input_h, input_w = transform.input_hw",
        [
            "tests/detector/test_inference.py::test_letterbox_keeps_the_aspect_and_maps_boxes_points_and_grids_back"
        ],
    ),
    (
        "letterbox: the cache mixes squashed and letterboxed passes",
        "sodviz/detector/inference.py",
        '    return (*key, "letterbox") if letterbox else key',
        "    return key",
        [
            "tests/detector/test_inference.py::test_letterbox_keeps_the_aspect_and_maps_boxes_points_and_grids_back"
        ],
    ),
    (
        "evaluation: model labels taken as category ids",
        "sodviz/evaluation/coco.py",
        "        return coco, np.array([by_name.get(name, -1) for name in class_names], np.int64)",
        "        return coco, np.arange(len(class_names), dtype=np.int64)",
        [
            "tests/evaluation/test_dataset_eval.py",
            "tests/training/test_train.py::test_fine_tuning_the_demo_on_data_with_other_classes",
        ],
    ),
    (
        "training: class heads kept when the class count matches",
        "sodviz/training/recipe.py",
        "items() if not any(h in k for h in CLASS_HEADS)}",
        "items()}",
        ["tests/training/test_train.py::test_fine_tuning_the_demo_on_data_with_other_classes"],
    ),
    (
        "letterbox: detections in the padding kept",
        "sodviz/detector/inference.py",
        "    probabilities = np.where(padding[:, None], 0.0, probabilities).astype(np.float32)",
        "    probabilities = probabilities.astype(np.float32)",
        ["tests/detector/test_inference.py"],
    ),
    (
        "validation: odd iscrowd values kept",
        "sodviz/evaluation/validation.py",
        '        if annotation.get("iscrowd", 0) not in (0, 1):  # also False / True',
        "        if False:",
        ["tests/evaluation/test_validation.py"],
    ),
    (
        "validation: annotation id 0 kept",
        "sodviz/evaluation/validation.py",
        "and _key(i) > 0)]",
        "and _key(i) >= 0)]",
        ["tests/evaluation/test_validation.py"],
    ),
    (
        "coco: crowd regions counted as missed",
        "sodviz/evaluation/coco.py",
        '            if annotation.get("iscrowd", 0) != 1:  # crowd regions are ignored, as pycocotools does',
        "            if True:",
        ["tests/evaluation/test_validation.py"],
    ),
    (
        "analysis: a fitting box with a low score is not a score miss",
        "sodviz/analysis/errors.py",
        "        elif (fits & (own < score_threshold)).any():",
        "        elif False:",
        ["tests/analysis/test_errors.py"],
    ),
    (
        "analysis: no duplicate false positives",
        "sodviz/analysis/errors.py",
        "        if (iou[i][same] >= MATCH_IOU).any():",
        "        if False:",
        ["tests/analysis/test_errors.py"],
    ),
    (
        "analysis: a batch written in place (no rename)",
        "sodviz/analysis/store.py",
        'temporary = self.root / f".{name}"',
        "temporary = self.root / name",
        ["tests/analysis/test_store.py::test_a_process_killed_while_writing_a_batch_leaves_no_batch"],
    ),
    (
        "analysis: stored images analysed again",
        "sodviz/analysis/job.py",
        'todo = tuple(t for t in tasks if t["image_key"] not in done)',
        "todo = tuple(tasks)",
        ["tests/analysis/test_job.py::test_rerun_is_free_and_added_images_are_the_only_work"],
    ),
    (
        "analysis: cancel ignored",
        "sodviz/analysis/job.py",
        "    while not (cancel is not None and cancel.is_set()):",
        "    while True:",
        ["tests/analysis/test_job.py::test_cancel_keeps_finished_batches_and_the_rerun_completes_them"],
    ),
    (
        "analysis: images left out of the manifest still read",
        "sodviz/analysis/store.py",
        '"JOIN read_parquet(?) m USING (image_key) GROUP BY i.image_key",',
        '"JOIN read_parquet(?) m ON true GROUP BY i.image_key",',
        [
            "tests/analysis/test_store.py",
            "tests/analysis/test_job.py::test_changed_annotations_recompute_that_image_only",
        ],
    ),
    (
        "analysis: Ray actors run other settings",
        "sodviz/analysis/ray_engine.py",
        "        self.settings = settings",
        "        self.settings = AnalysisSettings()",
        ["tests/analysis/test_engines.py::test_ray_writes_the_same_rows_as_the_local_engine"],
    ),
    (
        "analysis: attention share inside the box, not twice it",
        "sodviz/analysis/records.py",
        '"attention_share": map_mass_in_box(result, heat, truth[i], enlarge=ENLARGE),',
        '"attention_share": map_mass_in_box(result, heat, truth[i], enlarge=1.0),',
        ["tests/analysis/test_job.py::test_attention_shares_are_taken_inside_twice_the_box"],
    ),
    (
        "dataset page: an opened image without its ground truth",
        "pages/_analysis.py",
        "state[keys.ANNOTATIONS_UPLOAD] = json.dumps(one).encode()",
        "state[keys.ANNOTATIONS_UPLOAD] = None",
        ["tests/test_dataset_page.py::test_an_objects_patch_opens_it_on_attention_with_its_query"],
    ),
    (
        "analysis: detections on crowd regions count as false positives",
        "sodviz/analysis/records.py",
        '        status[(status == "FP") & inside.any(axis=0)] = "ignored"',
        "        pass",
        ["tests/analysis/test_datasets.py::test_odd_datasets_score_as_evaluate"],
    ),
    (
        "analysis: images without objects left out of the images table",
        "sodviz/analysis/queries.py",
        "FROM images i LEFT JOIN objects o USING (run, image_key) ",
        "FROM images i JOIN objects o USING (run, image_key) ",
        ["tests/analysis/test_datasets.py::test_odd_datasets_score_as_evaluate"],
    ),
    (
        "new families: sampling locations shifted by 0.01",
        "sodviz/detector/capture.py",
        'record.locations = arguments["sampling_locations"]',
        'record.locations = arguments["sampling_locations"] + 0.01',
        [
            "tests/detector/test_capture.py::test_captured_points_reproduce_module_output[lw_detr]",
            "tests/detector/test_capture.py::test_captured_points_reproduce_module_output[rf_detr]",
            "tests/detector/test_capture.py::test_captured_points_reproduce_module_output[grounding-dino]",
            "tests/detector/test_capture.py::test_captured_points_reproduce_module_output[mm-grounding-dino]",
        ],
    ),
    (
        "new families: attention weights perturbed (heads reversed)",
        "sodviz/detector/capture.py",
        "        weights = torch.stack([pair[1] for pair in pairs], dim=1)",
        "        weights = torch.stack([pair[1] for pair in pairs], dim=1).flip(3)",
        [
            f"tests/detector/test_capture.py::test_captured_points_reproduce_module_output[{family}]"
            for family in ("deimv2", "lw_detr", "rf_detr", "grounding-dino", "mm-grounding-dino")
        ],
    ),
    (
        "new families: feature levels permuted (module-fed locations)",
        "sodviz/detector/capture.py",
        'record.locations = arguments["sampling_locations"]',
        'record.locations = arguments["sampling_locations"].roll(1, dims=3)',
        [
            "tests/detector/test_capture.py::test_captured_points_reproduce_module_output[lw_detr]",
            "tests/detector/test_capture.py::test_captured_points_reproduce_module_output[grounding-dino]",
            "tests/detector/test_capture.py::test_captured_points_reproduce_module_output[mm-grounding-dino]",
        ],
    ),
    (
        "new families: feature levels permuted (DEIMv2, locations from offsets)",
        "sodviz/detector/capture.py",
        "    return torch.stack(padded, dim=3)",
        "    return torch.stack(padded[1:] + padded[:1], dim=3)",
        ["tests/detector/test_capture.py::test_captured_points_reproduce_module_output[deimv2]"],
    ),
    (
        "new families: text attention tokens reversed",
        "sodviz/detector/capture.py",
        "record.text_weights = output[1]",
        "record.text_weights = output[1].flip(-1)",
        ["tests/detector/test_capture.py::test_text_attention_is_what_the_decoder_returned"],
    ),
    (
        "prompt: a phrase scored by its worst token",
        "sodviz/detector/prompt.py",
        "logits[..., token_phrase == p].amax(dim=-1)",
        "logits[..., token_phrase == p].amin(dim=-1)",
        ["tests/detector/test_inference.py::test_phrase_scores_are_the_best_token_of_each_phrase"],
    ),
    (
        "prompt: plurals not made singular",
        "sodviz/detector/prompt.py",
        """    elif last.endswith("s") and not last.endswith("ss") and len(last) > 3:""",
        """    elif False:""",
        [
            "tests/test_families.py::test_phrases_and_categories_are_compared_as_singular_lower_case_names",
            "tests/test_families.py::test_evaluate_maps_prompt_phrases_to_the_data_and_says_what_it_could_not",
        ],
    ),
    (
        "prompt: the cache key ignores the prompt",
        "sodviz/detector/prompt.py",
        "weights = detector.weights_hash or detector.content_hash",
        "weights = detector.content_hash",
        ["tests/detector/test_inference.py::test_a_prompt_changes_the_classes_and_the_cache_key"],
    ),
    (
        "packing: canvas boxes mapped back at the wrong scale",
        "sodviz/crops/packing.py",
        "np.tile(self.tiles_xyxy[tile, :2], 2)) / scale +",
        "np.tile(self.tiles_xyxy[tile, :2], 2)) * scale +",
        ["tests/crops/test_packing.py"],
    ),
    (
        "packing: tile edges never cut a box",
        "sodviz/crops/packing.py",
        "cut[mine] = cut_by_crop_edge(in_crop[mine], crops[index], image_hw, margin=margin)",
        "cut[mine] = False",
        ["tests/crops/test_packing.py::test_a_box_cut_by_a_tile_edge_inside_the_image_is_a_cut_box"],
    ),
    (
        "flops: counted on a square input",
        "sodviz/detector/flops.py",
        "torch.zeros((1, 3, *input_hw),",
        "torch.zeros((1, 3, input_hw[0], input_hw[0]),",
        ["tests/detector/test_flops.py"],
    ),
    (
        "budget: a GFLOPs budget spent as passes",
        "sodviz/crops/budget.py",
        "return int(spare * costs.full / each + 1e-9) * max(pack, 1)",
        "return spare * max(pack, 1)",
        [
            "tests/crops/test_benchmark.py::test_what_a_budget_buys_in_passes_and_in_gflops",
            "tests/crops/test_benchmark.py::test_each_method_spends_its_gflops_budget_and_no_more",
        ],
    ),
    (
        "merges: WBF boxes not mapped back from [0, 1]",
        "sodviz/crops/fusion.py",
        "boxes = np.asarray(fused, np.float64).reshape(-1, 4) * extent + low",
        "boxes = np.asarray(fused, np.float64).reshape(-1, 4) + low",
        ["tests/crops/test_fusion.py::test_weighted_box_fusion_is_the_librarys"],
    ),
    (
        "merges: WBF keeps the first member of the class, not the best",
        "sodviz/crops/fusion.py",
        "kept.append(members[np.argmax(overlap_matrix(box, xyxy[members])[0])])",
        "kept.append(np.flatnonzero(class_ids == label)[0])",
        [
            "tests/crops/test_fusion.py::test_weighted_box_fusion_by_hand",
            "tests/crops/test_fusion.py::test_weighted_box_fusion_keeps_the_best_members_data",
        ],
    ),
    (
        "merges: a compared merge re-fuses with the primary merge",
        "sodviz/crops/budget_study.py",
        "detector, image, method, budget, replace(vicrop, fusion=fusions[merge]), unit=unit,",
        "detector, image, method, budget, vicrop, unit=unit,",
        ["tests/crops/test_benchmark.py::test_other_merges_refuse_the_same_passes"],
    ),
    (
        "merge diagnostics: every box on an object counts as a duplicate",
        "sodviz/evaluation/merge_diagnostics.py",
        "duplicates = int(np.clip(per_object - 1, 0, None).sum())",
        "duplicates = int(per_object.sum())",
        ["tests/evaluation/test_merge_diagnostics.py"],
    ),
    (
        "merge diagnostics: parts of another class count toward a split",
        "sodviz/evaluation/merge_diagnostics.py",
        "parts = boxes[inside & same[:, index]]",
        "parts = boxes[inside]",
        ["tests/evaluation/test_merge_diagnostics.py"],
    ),
    (
        "asahi: the grid searched by budget, not fixed",
        "sodviz/crops/slicing.py",
        "grids = [] if grid is None else [(True, 0, 0.0, *grid)]\n"
        "    for rows in range(1, max_slices + 1 if grid is None else 1):",
        "grids = []\n    for rows in range(1, max(max_slices, 6) + 1):",
        [
            "tests/crops/test_fusion.py::test_asahis_grid_is_a_fixed_count_of_sahi_slices",
            "tests/crops/test_benchmark.py::test_asahi_runs_its_grid_only_where_the_budget_affords_it",
        ],
    ),
    (
        "baselines: density counts every query alike",
        "sodviz/crops/baselines.py",
        "points, weights = _centres(result.boxes_xyxy[keep]), scores_all[keep].astype(np.float64)",
        "points, weights = _centres(result.boxes_xyxy), np.ones(len(scores_all))",
        ["tests/crops/test_baselines.py::test_density_goes_where_the_first_pass_found_things"],
    ),
    (
        "baselines: random crops not seeded by the image",
        "sodviz/crops/baselines.py",
        'seed = int.from_bytes(hashlib.sha256(image_key.encode()).digest()[:8], "little")',
        "seed = 0",
        ["tests/crops/test_baselines.py::test_random_crops_are_seeded_by_the_image"],
    ),
    (
        "baselines: the oracle counts covered objects again",
        "sodviz/crops/baselines.py",
        "            left = ~inside[chosen].any(0)",
        "            left = np.ones(inside.shape[1], bool)",
        ["tests/crops/test_baselines.py::test_the_oracle_covers_the_most_objects_a_greedy_cover_can"],
    ),
    (
        "evaluation: the faster backend is pycocotools after all",
        "sodviz/evaluation/coco.py",
        "        from faster_coco_eval import COCOeval_faster as COCOeval",
        "        from pycocotools.cocoeval import COCOeval",
        ["tests/evaluation/test_faster_coco.py::test_faster_coco_eval_gives_pycocotools_numbers"],
    ),
    (
        "ERF: ViT block N read from the block before",
        "sodviz/erf/stages.py",
        """backbone.out_features = [f"stage{s[5:]}" for s in blocks]""",
        """backbone.out_features = [f"stage{int(s[5:]) - 1}" for s in blocks]""",
        ["tests/erf/test_erf.py::test_vit_block_maps_are_the_backbones_own"],
    ),
]
env = os.environ | {"HF_HUB_OFFLINE": "1"}


def run(tests):
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    return r.returncode, r.stdout.strip().splitlines()[-1]


only = sys.argv[1:]
for name, file, old, new, tests in M:
    if only and not any(o in name for o in only):
        continue
    path = ROOT / file
    text = path.read_text()
    assert text.count(old) == 1, (name, text.count(old))
    try:
        path.write_text(text.replace(old, new))
        code_m, line_m = run(tests)
    finally:
        path.write_text(text)
    code, line = run(tests)
    print(
        f"{'OK ' if code_m != 0 and code == 0 else 'BAD'} {name}: mutated -> {line_m} | real -> {line}",
        flush=True,
    )
