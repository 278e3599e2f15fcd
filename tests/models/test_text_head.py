import pytest
import torch

from onefeed.models.config import ModelConfig
from onefeed.models.joint import TextHead


@pytest.mark.parametrize("text_layers", [1, 2])
def test_last_only_logits_equal_the_full_passes_last_position(text_layers):
    """Decoding runs the last block on the last position only; the logits must not change."""
    cfg = ModelConfig(d_model=16, n_heads=2, d_ff=32, dropout=0.0, text_layers=text_layers,
                      max_text_len=8, n_text_vocab=11)
    torch.manual_seed(0)
    head = TextHead(cfg).eval()
    cond, words, out = torch.randn(3, 16), torch.randn(3, 5, 16), torch.randn(11, 16)
    full = head(cond, words, out)
    assert full.shape == (3, 6, 11)
    last = head(cond, words, out, last_only=True)
    assert last.shape == (3, 11)
    assert torch.allclose(last, full[:, -1], atol=1e-5)
    # the causal mask still holds: the last position sees every earlier word
    changed = words.clone()
    changed[:, 0] = torch.randn(3, 16)
    assert not torch.allclose(head(cond, changed, out, last_only=True), last, atol=1e-4)


@pytest.mark.parametrize("text_layers", [1, 2])
def test_cached_decoding_equals_the_full_pass(text_layers):
    """``decode`` with the previous step's keys / values, reordered to each row's parent,
    gives the full pass's last-position logits at every step."""
    cfg = ModelConfig(d_model=16, n_heads=2, d_ff=32, dropout=0.0, text_layers=text_layers,
                      max_text_len=8, n_text_vocab=11)
    torch.manual_seed(0)
    head = TextHead(cfg).eval()
    cond, out = torch.randn(4, 16), torch.randn(11, 16)
    words = torch.zeros(4, 0, 16)
    with torch.no_grad():
        logits, past = head.decode(cond, words, out)
        torch.testing.assert_close(logits, head(cond, words, out, last_only=True))
        for t in range(1, 5):
            parent = torch.randperm(4)  # beams are reordered between steps
            cond, words = cond[parent], torch.cat([words[parent], torch.randn(4, 1, 16)], 1)
            logits, past = head.decode(cond, words, out,
                                       [(k[parent], v[parent]) for k, v in past])
            assert past[0][0].shape[2] == t + 1  # keys of [c, w_1..w_t]
            torch.testing.assert_close(logits, head(cond, words, out, last_only=True),
                                       atol=1e-5, rtol=1e-5)
