"""The pieces' logits processor off the CPU: its banned ids are placed on the device once, not at every token
(a Python-list index is a host->device copy per token on CUDA). The `meta` device stands in for a GPU."""

import torch

from assets.royalties.pieces import _BanTokens


def test_banned_ids_are_placed_on_the_device_once_and_banned_there():
    ban = _BanTokens([0, 2])
    out = ban(None, torch.zeros(2, 6, device="meta"))
    index = ban.placed[torch.device("meta")]
    for _ in range(2):
        out = ban(None, torch.zeros(2, 6, device="meta"))
    assert out.device.type == "meta" and index.device.type == "meta"
    assert list(ban.placed) == [torch.device("meta")] and ban.placed[torch.device("meta")] is index  # reused
    scores = ban(None, torch.zeros(2, 6))  # and on the CPU: exactly the listed ids, in place
    assert torch.equal(scores.isinf(), torch.tensor([[True, False, True, False, False, False]] * 2))
