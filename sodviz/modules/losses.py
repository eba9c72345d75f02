"""Cross-DINO's Category-Size (CS) soft label and Boost loss, as RT-DETR's classification term.

CS (eq. 4): cs = sqrt(h/H * w/W) * y, with y the one-hot class and h, w the box in an H x W image
(an 8 x 8 object in a 1024 x 1024 image: cs = 0.0078). Boost loss (eq. 5), as sodviz reads it:
RT-DETR's varifocal loss with the positive matches weighted up by their size boost
`1 - cs ** beta` (near 1 for tiny objects, falling for large ones):

    L = sum over positives  IoU * (1 + (1 - cs**beta)) * BCE(p, IoU)
      + sum over negatives  alpha * p**gamma * BCE(p, 0)

Negatives keep the focal weighting (alpha, gamma); only positive matches are size-weighted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_transforms import center_to_corners_format
from transformers.loss.loss_for_object_detection import box_iou
from transformers.loss.loss_rt_detr import RTDetrLoss, _set_aux_loss


@dataclass(frozen=True)
class BoostConfig:
    """Boost loss parameters."""

    alpha: float = 0.75  # weight of negatives (RT-DETR's focal_loss_alpha)
    gamma: float = 2.0  # focal exponent of negatives (RT-DETR's focal_loss_gamma)
    beta: float = 0.5  # shape of the size boost 1 - cs**beta (smaller: boost reaches larger objects less)

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise ValueError(f"Boost beta must be > 0, got {self.beta}")

    def to_dict(self) -> dict:
        return asdict(self)


def category_size(boxes_cxcywh: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """CS soft labels `[N, num_classes]` for boxes `[N, 4]` normalised to the image (w = width / W)."""
    size = (boxes_cxcywh[:, 2].clamp(min=0) * boxes_cxcywh[:, 3].clamp(min=0)).sqrt()
    return size[:, None] * F.one_hot(labels.long(), num_classes).to(size.dtype)


def size_boost(cs: torch.Tensor, beta: float) -> torch.Tensor:
    """1 - cs**beta: the extra weight a positive match gets (cs = 0 -> 1, cs = 1 -> 0)."""
    return 1 - cs.clamp(min=0, max=1) ** beta


class BoostLoss(RTDetrLoss):
    """RTDetrLoss whose classification term (kept under the `loss_vfl` key, so its weight and
    the denoising and auxiliary outputs stay as they were) is the Boost loss."""

    def __init__(self, config, boost: BoostConfig) -> None:
        super().__init__(config)
        self.boost = boost
        self.alpha, self.gamma = boost.alpha, boost.gamma

    def loss_labels_vfl(self, outputs, targets, indices, num_boxes, log=True):
        idx = self._get_source_permutation_idx(indices)
        src_boxes = outputs["pred_boxes"][idx]
        target_boxes = torch.cat([t["boxes"][i] for t, (_, i) in zip(targets, indices, strict=True)], dim=0)
        ious, _ = box_iou(
            center_to_corners_format(src_boxes.detach()), center_to_corners_format(target_boxes)
        )
        ious = torch.diag(ious)
        src_logits = outputs["logits"]  # [B, Q, num_classes]
        target_labels = torch.cat([t["class_labels"][i] for t, (_, i) in zip(targets, indices, strict=True)])
        target_classes = torch.full(
            src_logits.shape[:2], self.num_classes, dtype=torch.int64, device=src_logits.device
        )
        target_classes[idx] = target_labels
        target = F.one_hot(target_classes, num_classes=self.num_classes + 1)[..., :-1]
        score = torch.zeros_like(target_classes, dtype=src_logits.dtype)
        score[idx] = ious.to(src_logits.dtype)
        boost = torch.zeros_like(score)
        cs = category_size(target_boxes, target_labels, self.num_classes).sum(dim=1)
        boost[idx] = size_boost(cs, self.boost.beta).to(src_logits.dtype)
        target_score = score.unsqueeze(-1) * target
        pred_score = src_logits.detach().sigmoid()
        weight = self.alpha * pred_score.pow(self.gamma) * (1 - target) + target_score * (
            1 + boost.unsqueeze(-1)
        )
        loss = F.binary_cross_entropy_with_logits(src_logits, target_score, weight=weight, reduction="none")
        return {"loss_vfl": loss.mean(1).sum() * src_logits.shape[1] / num_boxes}


def boost_loss_function(boost: BoostConfig):
    """A `model.loss_function` for RTDetrForObjectDetection that uses `BoostLoss` (same signature
    and outputs as transformers' RTDetrForObjectDetectionLoss)."""

    def loss_function(
        logits,
        labels,
        device,
        pred_boxes,
        config,
        outputs_class=None,
        outputs_coord=None,
        enc_topk_logits=None,
        enc_topk_bboxes=None,
        denoising_meta_values=None,
        **kwargs,
    ):
        criterion = BoostLoss(config, boost).to(device)
        if denoising_meta_values is not None:  # the loss runs over the normal queries only
            _, logits = torch.split(logits, denoising_meta_values["dn_num_split"], dim=1)
            _, pred_boxes = torch.split(pred_boxes, denoising_meta_values["dn_num_split"], dim=1)
        outputs = {"logits": logits, "pred_boxes": pred_boxes}
        auxiliary = None
        if config.auxiliary_loss:
            if denoising_meta_values is not None:
                dn_coord, outputs_coord = torch.split(
                    outputs_coord, denoising_meta_values["dn_num_split"], dim=2
                )
                dn_class, outputs_class = torch.split(
                    outputs_class, denoising_meta_values["dn_num_split"], dim=2
                )
            auxiliary = _set_aux_loss(
                outputs_class[:, :-1].transpose(0, 1), outputs_coord[:, :-1].transpose(0, 1)
            )
            auxiliary.extend(_set_aux_loss([enc_topk_logits], [enc_topk_bboxes]))
            outputs["auxiliary_outputs"] = auxiliary
            if denoising_meta_values is not None:
                outputs["dn_auxiliary_outputs"] = _set_aux_loss(
                    dn_class.transpose(0, 1), dn_coord.transpose(0, 1)
                )
                outputs["denoising_meta_values"] = denoising_meta_values
        loss_dict = criterion(outputs, labels)
        return sum(loss_dict.values()), loss_dict, auxiliary

    return loss_function


def cs_curve(sizes_px: np.ndarray, image_side: float, beta: float) -> dict[str, np.ndarray]:
    """The Category-Size soft label of square objects of `sizes_px` in an `image_side` square image,
    and the Boost loss's weight on such a positive, 1 + (1 - cs**beta)."""
    cs = np.asarray(sizes_px, np.float64) / image_side
    boost = size_boost(torch.as_tensor(cs), beta).numpy()
    return {"size": np.asarray(sizes_px, np.float64), "cs": cs, "weight": 1 + boost}
