"""Sampling keeps its per-token work where the models run: on the CPU the caller's generator draws the tokens
itself (the same stream as a plain loop), so moving the work off the host changed no CPU result."""

import torch

from assets.naf.combine import cp_delta
from assets.naf.sampling import _on_device, sample
from tests.naf.test_sampling import Q1, Q2


def test_a_generator_on_the_models_device_draws_the_tokens_itself():
    generator = torch.Generator().manual_seed(0)
    assert _on_device(generator, torch.device("cpu")) is generator
    assert _on_device(generator, "cpu") is generator


def test_cpu_sampling_is_the_plain_loop_on_the_callers_generator():
    prompts = torch.tensor([[0], [1], [2], [0]])
    got_gen, ref_gen = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    got = sample([Q1, Q2], cp_delta, prompts, 12, generator=got_gen, temperature=0.8, batch_size=3)

    expected = []
    for lo in range(0, 4, 3):  # the same batches, one token at a time, everything on the host
        ids = prompts[lo: lo + 3]
        for _ in range(12):
            log_qs = [m(input_ids=ids).logits[:, -1].float().log_softmax(-1) for m in (Q1, Q2)]
            log_p, _ = cp_delta(log_qs)
            nxt = torch.multinomial((log_p / 0.8).softmax(-1), 1, generator=ref_gen).squeeze(-1)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
        expected.append(ids)
    assert torch.equal(got, torch.cat(expected)) and got.device.type == "cpu"
    assert torch.equal(got_gen.get_state(), ref_gen.get_state())  # no extra draw (no seed for another device)
