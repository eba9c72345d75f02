"""Session-state keys: every choice that persists across pages, their defaults, and what the app
keeps per session."""

from sodviz.crops.vicrop import ViCropConfig
from sodviz.erf.fields import BACKBONE_STAGES
from sodviz.modules.losses import BoostConfig

MODEL_KIND = "model_kind"  # "demo" | "preset" | "folder"
MODEL_PRESET = "model_preset"
MODEL_FOLDER = "model_folder"
PROMPT = "prompt"  # open-vocabulary models: the classes as text ("": the data's categories, or the model's)
IMAGE_KIND = "image_kind"  # "sample" | "upload"
SAMPLE_NAME = "sample_name"
IMAGE_UPLOAD = "image_upload"  # (file name, bytes), copied from the uploader: survives page switches
ANNOTATIONS_UPLOAD = "annotations_upload"  # bytes or None, likewise
IMAGE_UPLOADER = "_image_uploader"  # the widgets themselves (their values cannot be set): key prefixes,
ANNOTATIONS_UPLOADER = "_annotations_uploader"  # numbered by UPLOADS_TAKEN so a taken file is let go
UPLOADS_TAKEN = "_uploads_taken"
INPUT_SIZE = "input_size"  # 0: the model's default
LETTERBOX = "letterbox"  # fixed-size families: keep the aspect (pad) instead of squashing
THRESHOLD = "threshold"
CLASSES = "classes"
TOP_N = "top_n"
QUERY = "query"
LAYER = "layer"
HEAD = "head"
OPACITY = "opacity"
PRESENTATION = "presentation"
VICROP_K = "vicrop_k"
VICROP_SCALES = "vicrop_scales"
VICROP_OVERLAP = "vicrop_overlap"
VICROP_THRESHOLD = "vicrop_threshold"
VICROP_ALPHA = "vicrop_alpha"
VICROP_BETA = "vicrop_beta"
VICROP_GATE = "vicrop_gate"
VICROP_MAX_OVERLAP = "vicrop_max_overlap"
VICROP_SELECTION = "vicrop_selection"
ERF_STAGES = "erf_stages"
ERF_SCALE = "erf_scale"
ERF_RANDOM = "erf_random"
ERF_DATASET = "erf_dataset"
ERF_ZOOM = "erf_zoom"
ERF_OVER_IMAGE = "erf_over_image"
ERF_POINT = "erf_point"  # [x, y] in model-input pixels, or None: the centre
VICROP_IOU = "vicrop_iou"
VICROP_MERGE = "vicrop_merge"
VICROP_FILL = "vicrop_fill"
VICROP_SWITCH = "vicrop_switch"
VICROP_CROP_SIZE = "vicrop_crop_size"
VICROP_PACK = "vicrop_pack"
VICROP_METRIC = "vicrop_metric"
VICROP_COMPARE = "vicrop_compare"
VICROP_COMPUTE = "vicrop_compute"
VICROP_COMPUTE_BUDGET = "vicrop_compute_budget"
VICROP_TABLE = "vicrop_table"
FUSION_MODEL = "fusion_model"  # a name of EMBEDDED_MODELS, or a folder path
FUSION_MODE = "fusion_mode"  # "mean" | "channel" | "pca"
FUSION_CHANNEL = "fusion_channel"
FUSION_LEVEL = "fusion_level"
FUSION_STAGE = "fusion_stage"
FUSION_THRESHOLD = "fusion_threshold"
FUSION_BETA = "fusion_beta"
FUSION_SCORES = "fusion_scores"
FUSION_ERF = "fusion_erf"
ACS_OBJECT = "acs_object"  # index of the ground-truth object (or detection cluster) picked
ACS_HEADS = "acs_heads"
ACS_FEATURE = "acs_feature"
ACS_REGRESSOR = "acs_regressor"  # "ridge" | "boosting": ACS-Learned's regressor
ACS_CROPS = "acs_crops"  # add the queries of ViCrop-Det's crops (the ViCrop-Det page's settings)
DATASET_ANNOTATIONS = "dataset_annotations"  # typed on Home: a COCO file and its image folder
DATASET_IMAGES = "dataset_images"
DATASET_SOURCE = "dataset_source"  # the Dataset page's choice among `pages._dataset.sources()`
DATASET_STORE = "dataset_store"
DATASET_METHODS = "dataset_methods"
DATASET_BUDGETS = "dataset_budgets"
DATASET_THRESHOLD = "dataset_threshold"
DATASET_BUCKET = "dataset_bucket"
DATASET_ERROR = "dataset_error"
DATASET_SORT = "dataset_sort"
EXPLAIN_KIND = "explain_kind"  # "detection" (the picked query, QUERY) | "missed" (EXPLAIN_OBJECT)
EXPLAIN_OBJECT = "explain_object"  # index of the missed ground-truth object picked
EXPLAIN_METHODS = "explain_methods"
EXPLAIN_OUTPUT = "explain_output"  # ODAM's "score", "x0", "y0", "x1" or "y1"
EXPLAIN_MASKS = "explain_masks"
EXPLAIN_ZOOM = "explain_zoom"
EXPLAIN_CURVES = "explain_curves"
REPORT = "_report"  # page title -> ReportSection of the current model, image and input size
REPORT_META = "_report_meta"  # what the report records of the model, image and input
PICKS = (
    QUERY,
    ERF_POINT,
    ACS_OBJECT,
    EXPLAIN_OBJECT,
)  # what a click picks on one image, model and input size
PICK_CONTEXT = "_pick_context"

VICROP_DEFAULT = ViCropConfig()  # ViCrop-Det's defaults, which the page's controls start from
DEFAULTS = {
    MODEL_KIND: "demo",
    MODEL_FOLDER: "",
    PROMPT: "",
    IMAGE_KIND: "sample",
    INPUT_SIZE: 0,
    LETTERBOX: False,
    THRESHOLD: 0.3,
    TOP_N: 300,
    LAYER: "mean",
    HEAD: "mean",
    OPACITY: 0.5,
    PRESENTATION: False,
    VICROP_K: VICROP_DEFAULT.k,
    VICROP_SCALES: list(VICROP_DEFAULT.scales),
    VICROP_OVERLAP: VICROP_DEFAULT.overlap,
    VICROP_THRESHOLD: 0.3,
    VICROP_ALPHA: VICROP_DEFAULT.alpha,
    VICROP_BETA: VICROP_DEFAULT.beta,
    VICROP_GATE: VICROP_DEFAULT.gate_min_uncertain,
    VICROP_MAX_OVERLAP: VICROP_DEFAULT.max_overlap,
    VICROP_SELECTION: VICROP_DEFAULT.selection,
    ERF_STAGES: list(BACKBONE_STAGES),
    ERF_SCALE: "linear",
    ERF_RANDOM: False,
    ERF_DATASET: False,
    ERF_ZOOM: True,
    ERF_OVER_IMAGE: True,
    ERF_POINT: None,
    VICROP_IOU: VICROP_DEFAULT.fusion.threshold,
    VICROP_MERGE: VICROP_DEFAULT.fusion.merge,
    VICROP_FILL: VICROP_DEFAULT.fill,
    VICROP_SWITCH: VICROP_DEFAULT.fusion.low_score_nms,
    VICROP_CROP_SIZE: VICROP_DEFAULT.crop_size,
    VICROP_PACK: VICROP_DEFAULT.pack,
    VICROP_METRIC: VICROP_DEFAULT.fusion.metric,
    VICROP_COMPARE: False,
    VICROP_COMPUTE: False,
    VICROP_COMPUTE_BUDGET: 4,
    FUSION_MODEL: "demo-fusion",
    FUSION_MODE: "mean",
    FUSION_CHANNEL: 0,
    FUSION_LEVEL: 0,
    FUSION_STAGE: 1,
    FUSION_THRESHOLD: 0.3,
    FUSION_BETA: BoostConfig().beta,
    FUSION_SCORES: False,
    FUSION_ERF: False,
    ACS_HEADS: 4,
    ACS_FEATURE: "entropy",
    ACS_CROPS: False,
    ACS_REGRESSOR: "boosting",
    DATASET_ANNOTATIONS: "",
    DATASET_IMAGES: "",
    DATASET_METHODS: ["vicrop", "slicing"],
    DATASET_BUDGETS: [3],
    DATASET_THRESHOLD: 0.3,
    DATASET_BUCKET: "all",
    DATASET_ERROR: "all",
    DATASET_SORT: "missed",
    EXPLAIN_KIND: "detection",
    EXPLAIN_METHODS: ["attention", "odam", "random"],
    EXPLAIN_OUTPUT: "score",
    EXPLAIN_MASKS: 300,
    EXPLAIN_ZOOM: True,
    EXPLAIN_CURVES: True,
}

PERSISTENT = (
    *DEFAULTS,
    SAMPLE_NAME,
    MODEL_PRESET,
    CLASSES,
    QUERY,
    IMAGE_UPLOAD,
    ANNOTATIONS_UPLOAD,
    DATASET_SOURCE,
    DATASET_STORE,  # its default set by `init_state`: a served app's store is under its data folder
    EXPLAIN_OBJECT,
)
