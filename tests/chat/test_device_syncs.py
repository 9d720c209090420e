"""Host syncs in the generation and SFT loops: read-backs every few steps, not every token or step, with the same
tokens, curves and weights as reading back every time.

A host sync is counted as a scalar read-back dispatched to torch (`item`, `bool(tensor)`); on the CPU they cost
nothing, but on CUDA each one waits for the device. The CUDA setting of `generate` (ask whether every row has
finished only every FINISHED_CHECK_STEPS steps) is forced on the CPU here to show it returns the same ids.
"""

import math
import traceback

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import assets.lm.inference as inference
from assets.chat.budget import ReasoningBudget, generate_with_budget
from assets.chat.format import chat_token_ids
from assets.chat.sft import fit_sft, sft_data, sft_loss
from assets.chat.tasks import conversation, prompt_messages
from assets.lm.inference import FINISHED_CHECK_STEPS, generate
from assets.lm.model import ModelSize, build_model
from assets.lm.training import TrainConfig, TrainingDivergedError, next_token_loss
from tests.chat.conftest import make_model

SIZE = ModelSize("tiny", d_model=32, n_layers=2, n_heads=4, d_ff=64, context_length=64, n_kv_heads=2)
VOCAB = 12
READS = {torch.ops.aten.item.default, torch.ops.aten.is_nonzero.default, torch.ops.aten._local_scalar_dense.default}


class ScalarReads(TorchDispatchMode):
    """Counts scalar read-backs (under inference mode `item` / `is_nonzero`, else `_local_scalar_dense`).

    floating_only: only those of floating-point tensors (losses), and none made by torch.optim (the CPU AdamW
    reads its step count; the fused CUDA AdamW the trainers use there does not)."""

    def __init__(self, floating_only: bool = False):
        super().__init__()
        self.floating_only, self.count = floating_only, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in READS and (not self.floating_only or (
            args[0].is_floating_point()
            and not any("torch/optim/" in frame.filename for frame in traceback.extract_stack())
        )):
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def lm():
    return build_model(SIZE, VOCAB, seed=0, init_std=0.3).eval()


@pytest.fixture
def check_every(monkeypatch):
    """Set how often `generate` asks whether every row has finished (the CPU default is every step)."""

    def set_to(steps: int) -> None:
        monkeypatch.setattr(inference, "_finished_check_steps", lambda device: steps)

    return set_to


def padded_prompts():
    ids = torch.randint(0, VOCAB, (5, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, :2] = mask[3, :4] = 0
    return ids, mask


def test_asking_for_the_end_every_few_steps_returns_the_ids_of_asking_every_step(lm, check_every):
    ids, mask = padded_prompts()
    runs, stopped_early = {}, 0
    cases = [(eos, seed) for eos in (0, 3, 5) for seed in range(4)]
    for steps in (1, 3, FINISHED_CHECK_STEPS):
        check_every(steps)
        runs[steps] = [generate(lm, ids, 30, eos_token_id=eos, seed=seed, attention_mask=mask) for eos, seed in cases]
    for (eos, _), out in zip(cases, runs[1], strict=True):
        if out.size(1) < 6 + 30:  # stopped at the first step where every row has ended
            stopped_early += 1
            assert (out[:, -1] == eos).all() and not (out[:, -2] == eos).all()
    assert stopped_early >= 4  # the cut-back is exercised
    for steps in (3, FINISHED_CHECK_STEPS):
        assert all(torch.equal(a, b) for a, b in zip(runs[1], runs[steps], strict=True))


def test_generation_reads_back_once_per_few_tokens_not_per_token(lm, check_every):
    ids, mask = padded_prompts()
    check_every(FINISHED_CHECK_STEPS)

    def reads(n: int, **kwargs) -> int:
        with ScalarReads() as counter:
            generate(lm, ids, n, temperature=0, eos_token_id=VOCAB + 1, **kwargs)  # an eos never written
        return counter.count

    for kwargs in ({}, {"attention_mask": mask}):
        # 32 more tokens cost at most one read-back per FINISHED_CHECK_STEPS tokens (a padded mask included:
        # the model gets a [B, 1, 1, K] mask after the prompt, not a 2D one it would inspect every step)
        assert reads(8 + 32, **kwargs) - reads(8, **kwargs) <= 32 // FINISHED_CHECK_STEPS


@pytest.mark.parametrize("padded", [True, False])
def test_sampling_with_a_mask_draws_what_the_plain_loop_draws(lm, padded):
    """The loop as it was (the 2D mask at every step, multinomial from the seeded generator) is the reference;
    `generate` now drops a mask without padding and hands a padded one on as [B, 1, 1, K] after the prompt."""
    ids, mask = padded_prompts()
    mask = mask if padded else torch.ones_like(mask)
    out = generate(lm, ids, 12, seed=5, attention_mask=mask)
    generator, cache, step_input, seq, m = torch.Generator().manual_seed(5), None, ids, ids, mask
    with torch.inference_mode():
        for _ in range(12):
            kwargs = {inference._cache_kwarg(lm): cache} if cache is not None else {}
            positions = inference._positions(m)[:, -step_input.size(1):]
            result = lm(input_ids=step_input, attention_mask=m, position_ids=positions, use_cache=True, **kwargs)
            cache = inference._output_cache(result)
            nxt = torch.multinomial(result.logits[:, -1].float().softmax(-1), 1, generator=generator)
            seq, m, step_input = torch.cat([seq, nxt], 1), torch.cat([m, torch.ones_like(nxt)], 1), nxt
    assert torch.equal(out, seq)


def test_the_budget_processor_builds_its_banned_tokens_once_per_device(tokenizer):
    ids = chat_token_ids(tokenizer)
    processor = ReasoningBudget(ids, prompt_width=3, budget=2, max_answer_tokens=2)
    for device in ("cpu", "meta"):  # meta stands in for CUDA: a CPU tensor mixed in would raise
        for s in range(4):
            written = torch.full((2, 3 + s), ids.reasoning, device=device)
            scores = processor(written, torch.zeros(2, len(tokenizer), device=device))
            assert scores.device.type == device
        banned = processor.banned(torch.device(device))
        assert banned[0].device.type == device and banned is processor.banned(torch.device(device))
    assert len(processor._banned) == 2  # one pair of index tensors per device, not one per token


def test_budgeted_generation_is_the_same_when_the_end_is_checked_every_few_steps(tokenizer, arithmetic,
                                                                                  check_every):
    model = make_model(tokenizer, seed=1, init_std=0.5)
    conversations = [prompt_messages(r) for _, r in arithmetic.head(5).iterrows()]
    frames = {}
    for steps in (1, FINISHED_CHECK_STEPS):
        check_every(steps)
        frames[steps] = generate_with_budget(model, tokenizer, conversations, 6, k=3, max_answer_tokens=3,
                                             batch_size=4, seed=2)
    assert frames[1].to_dict("list") == frames[FINISHED_CHECK_STEPS].to_dict("list")  # forced lists included


@pytest.fixture(scope="module")
def sft_sets(tokenizer, arithmetic):
    rows = [conversation(r) for _, r in arithmetic[arithmetic.split == "train"].iterrows()]
    return sft_data(tokenizer, rows[:40], 96), sft_data(tokenizer, rows[40:56], 96)


def _fit(tokenizer, sft_sets, **overrides):
    train, val = sft_sets
    model, logged = make_model(tokenizer, seed=0), []
    cfg = TrainConfig(**{**dict(max_steps=13, batch_size=8, learning_rate=2e-2, min_lr=2e-3, warmup_steps=2,
                                eval_interval=5, log_interval=1, seed=0), **overrides})
    with ScalarReads(floating_only=True) as reads:
        result = fit_sft(model, train, cfg, val, on_log=logged.append)
    curve = result.curve.drop(columns="tokens_per_s").to_dict("list")
    rows = [{k: v for k, v in row.items() if k != "tokens_per_s"} for row in logged]
    return curve, rows, result.final_val_loss, model.state_dict(), reads.count


def test_sft_reads_the_loss_back_every_few_steps_with_the_curve_of_reading_every_step(tokenizer, sft_sets):
    every_step = _fit(tokenizer, sft_sets, loss_readback_steps=1)
    for readback in (4, 50):
        curve, rows, final, weights, float_reads = _fit(tokenizer, sft_sets, loss_readback_steps=readback,
                                                        grad_accum_steps=1)
        # repr: exact floats (repr round-trips), and the NaNs of rows without evaluation compare equal
        assert repr((curve, rows, final)) == repr(every_step[:3]) and len(curve["step"]) == 13
        assert all(torch.equal(weights[k], w) for k, w in every_step[3].items())
        assert float_reads <= 3  # the three evaluations (steps 5, 10, 13), never one per step
    assert math.isnan(every_step[0]["val_loss"][0]) and math.isfinite(every_step[0]["val_loss"][4])


def test_a_diverging_sft_run_names_the_same_step_and_logs_the_same_rows(tokenizer, sft_sets):
    outcomes = []
    for readback in (1, 50):
        logged = []
        cfg = TrainConfig(max_steps=20, batch_size=8, learning_rate=1e6, min_lr=1e5, warmup_steps=0,
                          eval_interval=100, grad_clip=None, seed=0, loss_readback_steps=readback)
        with pytest.raises(TrainingDivergedError) as error:
            fit_sft(make_model(tokenizer, seed=0), sft_sets[0], cfg, on_log=logged.append)
        outcomes.append((str(error.value), [row["step"] for row in logged]))
    assert outcomes[0] == outcomes[1] and "at step" in outcomes[0][0]


def test_sft_loss_summed_on_the_device_equals_the_host_sum(tokenizer, sft_sets):
    _, val = sft_sets
    model = make_model(tokenizer, seed=3)
    total, count = 0.0, 0  # the reference: each batch read back and summed in Python
    with torch.no_grad():
        for start in range(0, len(val), 5):
            width = int(val.lengths[start : start + 5].max())
            x, y = val.input_ids[start : start + 5, : width - 1], val.labels[start : start + 5, 1:width]
            total += float(next_token_loss(model.eval(), x, y, "sum"))
            count += int((y != -100).sum())
    assert sft_loss(model, val, batch_size=5) == total / count
