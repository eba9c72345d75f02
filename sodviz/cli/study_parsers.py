"""The arguments of the study commands (`erf`, `errors`, `acs`, `explain`): `cli.parser` adds them."""

from __future__ import annotations

from pathlib import Path


def add_split_arguments(command, *, model: bool = True) -> None:
    """`--data` and `--images` (a COCO split), and `--model` (default: the demo detector)."""
    command.add_argument("--data", type=Path, required=True, help="COCO annotations JSON")
    command.add_argument("--images", type=Path, required=True, help="folder of the images it names")
    if model:
        command.add_argument("--model", default="demo", help="'demo', a local folder, or a hub id")


def add_erf(commands) -> None:
    """`erf`: effective receptive fields per stage."""
    erf = commands.add_parser("erf", help="effective receptive field per stage, with a Gaussian sigma")
    erf.add_argument("--model", default="demo")
    erf.add_argument("--images", type=Path, required=True, help="folder of images (png, jpg, ...)")
    erf.add_argument("--n", type=int, default=50, help="average over the first N images (sorted by name)")
    erf.add_argument(
        "--stages",
        default=None,
        help="comma list, e.g. stage1,stage4; ViT backbones: block4,level0 (default: every stage)",
    )
    erf.add_argument("--input-size", type=int, default=None)
    erf.add_argument("--scale", choices=("linear", "log"), default="linear")
    erf.add_argument("--random-weights", action="store_true", help="also the same architecture, untrained")
    erf.add_argument("--out", type=Path, default=Path("runs/erf"))


def add_errors(commands) -> None:
    """`errors`: the error table of a base against a module detector."""
    errors = commands.add_parser(
        "errors", help="TP/FP/FN, precision, recall and F1 per size of a base vs a module detector"
    )
    add_split_arguments(errors, model=False)
    errors.add_argument("--model", required=True, help="the detector with modules (folder or hub id)")
    errors.add_argument("--base", default="demo", help="the detector to compare with (default: demo)")
    errors.add_argument("--threshold", type=float, default=0.3, help="score threshold (default 0.3)")
    errors.add_argument("--max-images", type=int, default=None)
    errors.add_argument("--out", type=Path, default=Path("runs/errors"), help="writes errors.csv / .md")


def add_acs(commands) -> None:
    """`acs`: ACS candidate selection on labelled splits."""
    acs = commands.add_parser(
        "acs", help="ACS: pick candidate boxes by attention entropy (free) or a learned IoU regressor"
    )
    acs.add_argument("--data", type=Path, required=True, help="COCO annotations JSON of the split to report")
    acs.add_argument("--images", type=Path, required=True, help="folder of the images it names")
    acs.add_argument("--fit-data", type=Path, required=True, help="COCO JSON of the split to fit on (val)")
    acs.add_argument("--fit-images", type=Path, required=True)
    acs.add_argument("--model", default="demo")
    acs.add_argument("--max-images", type=int, default=None, help="per split")
    acs.add_argument("--heads", type=int, default=4, help="discriminative heads ACS-Free reads")
    acs.add_argument(
        "--crops", action="store_true", help="add the queries of ViCrop-Det's crops (default config)"
    )
    acs.add_argument("--blend", type=float, default=0.5, help="rescoring: conf^(1-b) * predicted IoU^b")
    acs.add_argument("--out", type=Path, default=Path("runs/acs"))


def add_explain(commands) -> None:
    """`explain`: which instance map is faithful, per object size, over a labelled split."""
    explain = commands.add_parser(
        "explain", help="instance maps (attention, ODAM, D-RISE, relevance) scored for faithfulness per size"
    )
    add_split_arguments(explain)
    explain.add_argument(
        "--methods", default="attention,odam,drise,random",
        help="comma list of attention, odam, drise, relevance (dense attention only), random",
    )  # fmt: skip
    explain.add_argument("--per-bucket", type=int, default=12, help="objects drawn per size bucket")
    explain.add_argument("--masks", type=int, default=300, help="D-RISE masks per object (as the page)")
    explain.add_argument("--steps", type=int, default=16, help="deletion / insertion steps")
    explain.add_argument("--threshold", type=float, default=0.3, help="score of a detection (default 0.3)")
    explain.add_argument("--input-size", type=int, default=None)
    explain.add_argument("--max-images", type=int, default=None)
    explain.add_argument("--seed", type=int, default=0)
    explain.add_argument("--out", type=Path, default=Path("runs/explain"))
