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
of the row as written. Each round is a pass of the whole model over the prompts (for a 1.5B
model on a CPU, most of an hour for 512 prompts); when only the top layers train on cached
states, one round does, and the figures of the row as written come from the caching pass's
states through the top layers alone (:func:`rarx.train.gate.probe_as_written`).
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
    as_written: bool = True  # figures from states the written row gives (else the fit's)

    def metrics(self) -> dict[str, float]:
        return {f"probe_{k}": round(float(v), 4) for k, v in self.__dict__.items()}


def reply_states(model: Any, prompts: Sequence[Sequence[int]], token_id: int, pad_id: int,
                 batch_size: int = 8, embeds: Sequence[Any] | None = None,
                 quiet: bool = True) -> tuple[Any, Any, Any]:  # fmt: skip
    """At the last position of each prompt (where the reply starts): the output head's input
    ``h``, the best logit among the other tokens, and the token's own logit.

    Prompts are padded on the left (positions counted from each row's first real token) so
    the head runs at the last position only: over a 150k vocabulary it costs a sixth of a
    1.5B model's forward pass at every position. ``embeds`` (one ``[len(prompt), hidden]``
    array per prompt) replace the token ids as the model's input: the cached input of the
    top layers, with the model cut to them (:func:`rarx.train.frozen_states.top_only`)."""
    import numpy as np
    import torch

    from rarx.progress import progress

    head = model.get_output_embeddings()
    captured: list[Any] = []
    hook = head.register_forward_hook(lambda _m, args, _out: captured.append(args[0]))
    device = next(model.parameters()).device
    states, best, own = [], [], []
    was_training = model.training
    model.eval()
    starts = range(0, len(prompts), batch_size)
    try:
        with torch.no_grad():
            for i in progress(starts, desc="probe states", unit="batch", quiet=quiet):
                chunk = prompts[i : i + batch_size]
                width = max(len(p) for p in chunk)
                mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])
                inputs: dict[str, Any] = {
                    "attention_mask": mask.to(device),
                    "position_ids": (mask.cumsum(-1) - 1).clamp(min=0).to(device),
                    "logits_to_keep": 1,
                }
                if embeds is None:
                    ids = [[pad_id] * (width - len(p)) + list(p) for p in chunk]
                    inputs["input_ids"] = torch.tensor(ids).to(device)
                else:
                    rows = [np.asarray(e, dtype=np.float32) for e in embeds[i : i + batch_size]]
                    x = torch.zeros((len(chunk), width, rows[0].shape[-1]))
                    for b, e in enumerate(rows):
                        x[b, width - len(e) :] = torch.from_numpy(e)
                    inputs["inputs_embeds"] = x.to(device)
                captured.clear()
                z = model(**inputs).logits[:, -1].float()
                states.append(captured[-1][:, -1].float().cpu())
                own.append(z[:, token_id].clone().cpu())
                z[:, token_id] = float("-inf")
                best.append(z.max(dim=-1).values.cpu())
    finally:
        hook.remove()
        if was_training:
            model.train()
    return torch.cat(states), torch.cat(best), torch.cat(own)


def fit_token_row(model: Any, token_id: int, prompts: Sequence[Sequence[int]],
                  labels: Sequence[bool], pad_id: int, l2: float = 1e-3, rounds: int = 2,
                  max_iter: int = 200, as_written: bool = True,
                  quiet: bool = True) -> ProbeFit:  # fmt: skip
    """Fit the output row of ``token_id`` so that greedy decoding at the end of each prompt
    emits it exactly where ``labels`` say (True: the reply starts with the token); writes
    the row into the model. Each of the ``rounds`` fits runs the model over the prompts
    first; ``as_written`` runs it once more for the figures of the row as written, else
    they are those of the last fit's states (:func:`probe_figures` gives the written
    ones later, from states computed another way)."""
    import torch

    if len(prompts) != len(labels) or not prompts:
        raise ConfigError("the token probe needs prompts with one label each")
    if all(labels) or not any(labels):
        raise ConfigError("the token probe needs prompts with and without the token as target")
    if rounds < 1:
        raise ConfigError(f"the token probe needs at least one round, got {rounds}")
    head = model.get_output_embeddings()
    if head is None:
        raise ConfigError("the model has no output embedding to fit the new token's row in")
    y = torch.tensor([float(x) for x in labels])
    start = head.weight[token_id].detach().float().cpu()
    bias = float(head.bias[token_id]) if getattr(head, "bias", None) is not None else 0.0

    before = None
    for _ in range(rounds):
        h, best, own = reply_states(model, prompts, token_id, pad_id, quiet=quiet)
        if before is None:
            before = _accuracy(own - best, y)
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
    if as_written:
        _, best, own = reply_states(model, prompts, token_id, pad_id, quiet=quiet)
    else:  # the last fit's states, with the row as fitted
        own = h @ head.weight[token_id].detach().float().cpu() + bias
    return probe_figures(model, token_id, labels, best, own, float(before or 0.0),
                         written=as_written)  # fmt: skip


def probe_figures(model: Any, token_id: int, labels: Sequence[bool], best: Any, own: Any,
                  accuracy_before: float, written: bool = True) -> ProbeFit:  # fmt: skip
    """The :class:`ProbeFit` of the token's row in ``model`` from the best other logit and
    the token's own logit at each prompt's end."""
    import torch

    y = torch.tensor([float(x) for x in labels])
    margin = own - best
    weight = model.get_output_embeddings().weight.detach()
    return ProbeFit(
        examples=len(labels), positives=int(y.sum()), accuracy_before=accuracy_before,
        accuracy_after=_accuracy(margin, y), margin_positive=float(margin[y == 1].mean()),
        margin_negative=float(margin[y == 0].mean()),
        row_norm=float(weight[token_id].norm() / weight.norm(dim=1).median()),
        as_written=written,
    )  # fmt: skip


def _accuracy(margin: Any, y: Any) -> float:
    return float(((margin > 0).float() == y).float().mean())
