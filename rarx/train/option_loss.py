"""A listwise loss over each question's options for sentence-transformers' CrossEncoder
trainer: softmax cross-entropy between the model's scores of a question's options and a
target distribution over them.

With a one-hot target (the correct option) this is the listwise softmax loss; with a
teacher's distribution (``softmax(teacher_scores / T)``, optionally mixed with the
one-hot) it is distillation by KL divergence over the options (cross-entropy differs
from KL only by the teacher's entropy, a constant). Questions may have different
numbers of options; padded places get no probability. Imports torch: load it lazily.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class OptionSoftmaxLoss(nn.Module):
    """Inputs ``(queries, options_lists)``; labels: one target distribution per question
    (a list of probabilities, one per option, summing to 1)."""

    def __init__(self, model: Any, mini_batch_size: int = 64) -> None:
        super().__init__()
        self.model = model
        self.mini_batch_size = mini_batch_size
        if model.num_labels != 1:
            raise ValueError(f"OptionSoftmaxLoss needs a 1-label model, got {model.num_labels}")

    def forward(
        self,
        inputs: list[list[str] | list[list[str]]],
        labels: list[Tensor],
        prompt: str | None = None,
        task: str | None = None,
    ) -> Tensor:
        from sentence_transformers.util import batch_to_device

        queries, options = inputs
        sizes = [len(o) for o in options]
        pairs = [(q, o) for q, opts in zip(queries, options, strict=True) for o in opts]
        logits = []
        for i in range(0, len(pairs), self.mini_batch_size):
            tokens = self.model.preprocess(pairs[i : i + self.mini_batch_size], prompt=prompt,
                                           task=task)  # fmt: skip
            tokens = batch_to_device(tokens, self.model.device)
            logits.append(self.model(tokens)["scores"].view(-1))
        flat = torch.cat(logits).float()
        rows, cols = len(sizes), max(sizes)
        scores = torch.full((rows, cols), float("-inf"), device=flat.device)
        target = torch.zeros((rows, cols), device=flat.device)
        row_idx = torch.repeat_interleave(torch.arange(rows), torch.tensor(sizes))
        col_idx = torch.cat([torch.arange(n) for n in sizes])
        scores[row_idx, col_idx] = flat
        target[row_idx, col_idx] = torch.cat([t.float() for t in labels]).to(flat.device)
        log_p = torch.log_softmax(scores, dim=1).masked_fill(target == 0, 0.0)
        return -(target * log_p).sum(dim=1).mean()

    def get_config_dict(self) -> dict[str, Any]:
        return {"mini_batch_size": self.mini_batch_size}
