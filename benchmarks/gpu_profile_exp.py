"""The watermark's EXP / EXP-edit detectors as GPU work: their permutation tests and statistics are elementwise
kernels, counted op by op on meta tensors (`dispatch_traffic`: launches and bytes moved, nothing computed), plus
the permutation tests' null keys drawn on the CPU. Used by `gpu_profile_work.watermark_jobs`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

from benchmarks.gpu_profile_work import SMALL_MODEL_MFU, Job, _code_vocab


def dispatch_traffic(fn: Callable[[], object]) -> tuple[int, float]:
    """(kernel launches, bytes read and written) of ``fn()`` run on meta tensors (shapes only, nothing computed):
    every aten op that is not a view counts as one launch that moves its input and output tensors once."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class Count(TorchDispatchMode):
        launches, moved = 0, 0.0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            alias = func._schema.returns[0].alias_info if func._schema.returns else None
            if alias is None or alias.is_write:  # a view launches nothing
                self.launches += 1
                self.moved += sum(t.numel() * t.element_size() for t in tree_leaves((args, kwargs, out))
                                  if isinstance(t, torch.Tensor))
            return out

    with Count() as count:
        fn()
    return count.launches, count.moved


@functools.cache
def exp_detection_traffic(edit: bool, texts: int, runs: int, length: int, key_length: int, vocab: int,
                          block: int | None) -> tuple[int, float]:
    """(launches, bytes) of one chunk of an EXP / EXP-edit detection (`assets.watermark.exp_sampling`): with
    ``runs`` > 0 the null statistic of ``texts`` texts under ``runs`` null keys (a permutation test's chunk, its
    cost tensor already on the device), with ``runs`` = 0 the texts' own statistic (cost tensor built from ξ)."""
    import torch

    from assets.watermark.exp_sampling import cost_tensor, edit_statistic, exp_statistic

    aligned = edit_statistic if edit else exp_statistic

    def one_chunk():
        if runs:
            return aligned(torch.empty((runs, texts, length, key_length), device="meta"), block=block)
        tokens = torch.zeros((texts, length), dtype=torch.long, device="meta")
        return aligned(cost_tensor(tokens, torch.empty((key_length, vocab), device="meta")), block=block)

    return dispatch_traffic(one_chunk)


def exp_detection(study: str, what: str, edit: bool, calls: list[int], chunk: int, runs: int, length: int,
                  key_length: int, vocab: int, block: int | None, part: str | None = None) -> Job:
    """EXP / EXP-edit detections: one call per entry of ``calls`` (its number of texts), ``chunk`` texts at a
    time on the device; with ``runs`` null keys per text (a permutation test, whose null uniforms are drawn on
    the CPU: ``runs`` x key rows x tokens per text) or none (the statistic alone). The dynamic programme's
    elementwise work is counted as FLOPs = bytes / 4 (one float32 op per element moved; it is memory bound)."""
    chunks = sum(math.ceil(c / chunk) for c in calls)
    launches, moved = exp_detection_traffic(edit, chunk, runs, length, key_length, vocab, block)
    texts = sum(calls)
    return Job(study, what, chunks * moved / 4, chunks * launches, SMALL_MODEL_MFU, 0.0, part,
               texts * max(runs, 1), bytes=chunks * moved, host_uniforms=texts * runs * key_length * length)


def exp_detections(s: dict) -> list[Job]:
    """EXP and EXP-edit detection as `assets.watermark.study` runs it, per detector with a key ξ. Permutation
    tests (``permutation_runs`` null keys per text): the watermarked texts and the first min(n_texts, n_null)
    null texts at calibration (`detection_tables`), the attacked texts before and after the walk
    (`run_attack`). The statistic alone: the null texts, the watermarked texts and those null texts again at
    calibration; in the walk its first detection, every step's accepted texts (counted as if every proposal
    were accepted: an upper bound), the final texts, and once more inside each permutation test's call."""
    c = s["configs"]["watermark"]
    gen, att = c["WatermarkGenerationConfig"], c["WatermarkAttackConfig"]
    n_texts, n_perm, runs = gen["n_texts"], min(gen["n_texts"], gen["n_null"]), gen["permutation_runs"]
    length, key_length, block = gen["response_tokens"], gen["exp_key_length"], s["watermark_block"]
    k = block or length  # `permutation_pvalues`'s chunking: as many texts as fit its element budget, at least one
    per_chunk = max(1, s["permutation_chunk_elements"] // max(key_length * (length - k + 1) * (k + 1) * k * runs, 1))
    tested = [n_texts, n_perm, n_texts, n_texts]
    scored = [gen["n_null"], n_texts, n_perm, n_texts, *[n_texts] * att["steps"], n_texts, n_texts, n_texts]
    jobs = []
    for name, edit in s["watermark_exp_detectors"].items():
        jobs += [exp_detection("watermark", f"{name} permutation tests", edit, tested, per_chunk, runs, length,
                               key_length, _code_vocab(s), block, part="watermark.permutation"),
                 exp_detection("watermark", f"{name} statistic", edit, scored, s["statistic_chunk"], 0, length,
                               key_length, _code_vocab(s), block)]
        jobs[-2].group = f"EXP / EXP-edit permutation tests ({runs} null keys per text)"
        jobs[-1].group = "EXP / EXP-edit statistic (calibration, every walk step)"
    return jobs
