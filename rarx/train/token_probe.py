"""Start a new token's output row as a linear probe, then fine-tune (LP-FT).

A token added to the vocabulary (``<RET>``) starts with a mean-resized row, and its logit
sits far below the tokens the model already predicts (SmolLM2-135M: about 7 nats). At a
learning rate that leaves the rest of the model intact, Adam moves that row by about the
learning rate per step, so a few hundred steps never lift it to the top and the trained gate
never emits it. Kumar et al. (2022, "Fine-Tuning can Distort Pretrained Features") fit a new
head as a linear probe on the frozen model first and fine-tune from there; here the new head
is one row of the output embedding.

Greedy decoding emits the new token after state ``h`` when its logit ``e . h (+ b)`` beats
the best other token's, so the probe is a logistic regression on that margin, with the best
other logit as a per-example offset: fitted with L-BFGS and an L2 pull towards the starting
row, and only the row changes. A tied head shares the row with the input embedding, so a
prompt that holds the token itself (the Adapt-LLM prompt names ``<RET>``) sees the new row
too: the fit is repeated on the states the new row gives, and the figures reported are those
of the row as written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rarx.errors import ConfigError


@dataclass(frozen=True)
class ProbeFit:
    """How greedy decoding decides on the prompts the row was fitted on, before and after
    the fit (the share where it emits the token exactly where the token is the target), and
    the mean margin after it in nats (the token's logit minus the best other one's) for
    both classes."""

    examples: int
    positives: int
    accuracy_before: float
    accuracy_after: float
    margin_positive: float
    margin_negative: float
    row_norm: float  # the fitted row's L2 norm over the head's median row norm

    def metrics(self) -> dict[str, float]:
        return {f"probe_{k}": round(float(v), 4) for k, v in self.__dict__.items()}


def reply_states(model: Any, prompts: Sequence[Sequence[int]], token_id: int, pad_id: int,
                 batch_size: int = 8) -> tuple[Any, Any, Any]:  # fmt: skip
    """At the last position of each prompt (where the reply starts): the output head's input
    ``h``, the best logit among the other tokens, and the token's own logit."""
    import torch

    head = model.get_output_embeddings()
    captured: list[Any] = []
    hook = head.register_forward_hook(lambda _m, args, _out: captured.append(args[0]))
    states, best, own = [], [], []
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(prompts), batch_size):
                chunk = prompts[i : i + batch_size]
                width = max(len(p) for p in chunk)
                ids = torch.tensor([[*p, *[pad_id] * (width - len(p))] for p in chunk])
                mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in chunk])
                last = torch.tensor([len(p) - 1 for p in chunk])
                rows = torch.arange(len(chunk))
                captured.clear()
                logits = model(input_ids=ids.to(model.device),
                               attention_mask=mask.to(model.device)).logits  # fmt: skip
                z = logits[rows, last].float()
                states.append(captured[-1][rows, last].float().cpu())
                own.append(z[:, token_id].clone().cpu())
                z[:, token_id] = float("-inf")
                best.append(z.max(dim=-1).values.cpu())
    finally:
        hook.remove()
    return torch.cat(states), torch.cat(best), torch.cat(own)


def fit_token_row(model: Any, token_id: int, prompts: Sequence[Sequence[int]],
                  labels: Sequence[bool], pad_id: int, l2: float = 1e-3, rounds: int = 2,
                  max_iter: int = 200) -> ProbeFit:  # fmt: skip
    """Fit the output row of ``token_id`` so that greedy decoding at the end of each prompt
    emits it exactly where ``labels`` say (True: the reply starts with the token); writes
    the row into the model."""
    import torch

    if len(prompts) != len(labels) or not prompts:
        raise ConfigError("the token probe needs prompts with one label each")
    if all(labels) or not any(labels):
        raise ConfigError("the token probe needs prompts with and without the token as target")
    head = model.get_output_embeddings()
    if head is None:
        raise ConfigError("the model has no output embedding to fit the new token's row in")
    y = torch.tensor([float(x) for x in labels])
    start = head.weight[token_id].detach().float().cpu()
    bias = float(head.bias[token_id]) if getattr(head, "bias", None) is not None else 0.0

    def accuracy(margin: Any) -> float:
        return float(((margin > 0).float() == y).float().mean())

    before = None
    for _ in range(rounds):
        h, best, own = reply_states(model, prompts, token_id, pad_id)
        if before is None:
            before = accuracy(own - best)
        e = start.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([e], max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure(h: Any = h, best: Any = best, e: Any = e, opt: Any = opt) -> Any:
            opt.zero_grad()
            margin = h @ e + bias - best
            loss = torch.nn.functional.binary_cross_entropy_with_logits(margin, y)
            loss = loss + 0.5 * l2 * torch.sum((e - start) ** 2)
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            head.weight[token_id] = e.detach().to(head.weight.dtype).to(head.weight.device)
    _, best, own = reply_states(model, prompts, token_id, pad_id)  # the row as written
    margin = own - best
    weight = head.weight.detach()
    return ProbeFit(
        examples=len(labels), positives=int(y.sum()), accuracy_before=float(before or 0.0),
        accuracy_after=accuracy(margin), margin_positive=float(margin[y == 1].mean()),
        margin_negative=float(margin[y == 0].mean()),
        row_norm=float(weight[token_id].norm() / weight.norm(dim=1).median()),
    )  # fmt: skip
