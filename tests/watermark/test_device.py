"""The watermark processors off the CPU: what is constant over a generation crosses to the device once, and the
cached paths give exactly the CPU results. The `meta` device stands in for a GPU: an op mixing a CPU tensor
with a meta one is the host->device traffic a CUDA run would pay, and `CrossDeviceOps` counts those."""

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from assets.watermark import exp_sampling as exp_mod
from assets.watermark.greenlist import (
    DeviceGreenRows,
    KGWGreenLists,
    UnigramGreenList,
    kgw_logits_processor,
    unigram_logits_processor,
)
from assets.watermark.infill import ban_tokens, middle_mask, train_infiller

V = 50


class CrossDeviceOps(TorchDispatchMode):
    """Counts the ops whose tensors (arguments and results) sit on more than one device."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
        self.count += len({t.device.type for t in tensors}) > 1
        return out


def crossings_per_call(processor, calls: int = 3) -> list[int]:
    """Cross-device ops in each of ``calls`` calls of ``processor(ids, scores)`` on meta scores [2, V]."""
    counts = []
    for _ in range(calls):
        with CrossDeviceOps() as ops:
            out = processor(torch.zeros(2, 3, dtype=torch.long, device="meta"), torch.zeros(2, V, device="meta"))
        assert out.device.type == "meta" and out.shape == (2, V)
        counts.append(ops.count)
    return counts


def test_constant_tensors_cross_to_the_device_on_the_first_call_only():
    xi = exp_mod.exp_key(3, 8, V)
    exp_sample = exp_mod.exp_sampler(xi, torch.tensor([1, 6]))
    processors = {"unigram": unigram_logits_processor(UnigramGreenList(V), 2.0), "ban": ban_tokens((0, 1, 7)),
                  "exp": lambda ids, scores: scores + exp_sample(scores, 0)[:, None]}
    for name, processor in processors.items():
        first, *later = crossings_per_call(processor)
        assert first >= 1 and later == [0, 0], name


def test_device_green_rows_are_the_table_rows_each_copied_once():
    lists = KGWGreenLists(V, gamma=0.25)
    rows = DeviceGreenRows(lists, "cpu", capacity=2)  # grows past its first two rows
    seen: set[int] = set()
    with torch.inference_mode():  # as inside generate()
        for prev in ([4, 9], [9, 4], [1, 2, 3, 4], [9, 9], [0, 49, 4]):
            mask = rows.mask_rows(torch.tensor(prev))
            seen |= set(prev)
            assert torch.equal(mask, lists.mask_rows(torch.tensor(prev)))
            assert rows.count == len(seen)  # a row already there is not copied again
    assert rows.rows.size(0) >= len(seen)
    with pytest.raises(ValueError, match="token ids"):
        rows.mask_rows(torch.tensor([V]))


def test_kgw_generation_through_the_device_rows_is_the_cpu_generation(tiny_lm):
    from assets.lm.inference import generate

    prompts = torch.randint(0, 120, (3, 4), generator=torch.Generator().manual_seed(0))
    out = {}
    for device_rows in (False, True):
        lists = KGWGreenLists(120, gamma=0.25)
        out[device_rows] = generate(tiny_lm, prompts, 12, seed=1,
                                    logits_processors=[kgw_logits_processor(lists, 2.0, device_rows=device_rows)])
    assert torch.equal(out[False], out[True])


def reference_curve(model, examples, spans, cfg, context_weight):
    """The in-filler's loop as it was, reading every step's loss back at once: (train losses, curve steps)."""
    import torch.nn.functional as F

    from assets.lm.training import configure_optimizer, lr_at

    data = torch.as_tensor(examples, dtype=torch.long)
    weight = torch.where(torch.as_tensor(middle_mask(spans, data.size(1))), 1.0, float(context_weight))[:, 1:]
    model.train()
    optimizer = configure_optimizer(model, cfg, "cpu")
    generator = torch.Generator().manual_seed(cfg.seed)
    order, position, total, losses, steps = torch.randperm(len(data), generator=generator), 0, 0.0, [], []
    for step in range(1, cfg.max_steps + 1):
        if position + cfg.batch_size > len(order):
            order, position = torch.randperm(len(data), generator=generator), 0
        idx = order[position:position + cfg.batch_size]
        position += cfg.batch_size
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        logits = model(input_ids=data[idx, :-1], use_cache=False).logits
        ce = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), data[idx, 1:].reshape(-1), reduction="none")
        loss = (ce * weight[idx].reshape(-1)).sum() / weight[idx].sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        total += float(loss.detach())
        if step % cfg.log_interval == 0 or step == cfg.max_steps:
            losses.append(total / (step % cfg.log_interval or cfg.log_interval))
            steps.append(step)
            total = 0.0
    return losses, steps


def small_infiller(seed: int = 4):
    from assets.lm.model import ModelSize, build_model

    return build_model(ModelSize("fim-device", 32, 1, 2, 64, 128), vocab_size=123, seed=seed)


@pytest.fixture(scope="module")
def fim_data():
    rng = np.random.default_rng(0)
    return rng.integers(0, 123, size=(41, 16)), rng.integers(1, 4, size=41)


def test_infiller_curve_is_the_per_step_readback_curve_whatever_the_readback_interval(fim_data):
    from assets.lm.training import TrainConfig

    examples, spans = fim_data
    base = dict(max_steps=11, batch_size=4, learning_rate=3e-3, min_lr=3e-4, warmup_steps=2, log_interval=2, seed=1)
    expected_losses, expected_steps = reference_curve(small_infiller(), examples, spans, TrainConfig(**base), 0.3)
    reference_weights = None
    for readback in (1, 3, 50):
        model, logged = small_infiller(), []
        curve, _ = train_infiller(model, examples, spans, TrainConfig(**base, loss_readback_steps=readback),
                                  context_weight=0.3, on_log=logged.append)
        assert curve["train_loss"].tolist() == expected_losses and curve["step"].tolist() == expected_steps
        assert [r["step"] for r in logged] == expected_steps == [2, 4, 6, 8, 10, 11]
        weights = [p.detach().clone() for p in model.parameters()]
        reference_weights = reference_weights or weights
        assert all(torch.equal(a, b) for a, b in zip(weights, reference_weights, strict=True))


def test_infiller_divergence_names_the_step_it_appeared_at(fim_data):
    from assets.lm.training import TrainConfig

    examples, spans = fim_data
    logged = []
    cfg = TrainConfig(max_steps=6, batch_size=4, warmup_steps=1, log_interval=1, loss_readback_steps=50)
    with pytest.raises(ValueError, match="diverged at step 1 "):  # NaN context weights: NaN from the first step
        train_infiller(small_infiller(), examples, spans, cfg, context_weight=float("nan"), on_log=logged.append)
    assert logged == []


def test_exp_detection_keeps_its_key_on_the_device_and_its_dynamic_programme_there():
    from assets.watermark.schemes import Scheme

    scheme = Scheme("exp", "exp", V, key_length=8, device="meta")
    key = scheme._key_on_device()
    assert key.device.type == "meta" and scheme._key_on_device() is key  # copied on the first detection only
    scheme.device = "cpu"
    assert scheme._key_on_device() is scheme.state
    tokens = torch.randint(0, V, (3, 6), generator=torch.Generator().manual_seed(0)).to("meta")
    cost = exp_mod.cost_tensor(tokens, key)  # every tensor the statistics build lives where the cost does
    with CrossDeviceOps() as ops:
        statistics = [exp_mod.exp_statistic(cost, 4), exp_mod.edit_statistic(cost, 0.4, 4)]
    assert ops.count == 0 and all(s.device.type == "meta" and s.shape == (3,) for s in statistics)


def test_a_replaced_scheme_detects_with_its_own_key():
    # the placed copy of ξ is a cache, not state: dataclasses.replace(key=...) must not carry the old key over
    import dataclasses

    import torch

    from assets.watermark.schemes import Scheme

    old = Scheme("exp", "exp", 50, key=1, key_length=8)
    tokens = torch.randint(0, 50, (3, 12), generator=torch.Generator().manual_seed(0))
    old.detect(tokens)  # fills the cache
    new = dataclasses.replace(old, key=123)
    fresh = Scheme("exp", "exp", 50, key=123, key_length=8)
    assert (new.detect(tokens)["statistic"] == fresh.detect(tokens)["statistic"]).all()
    assert not (new.detect(tokens)["statistic"] == old.detect(tokens)["statistic"]).all()
