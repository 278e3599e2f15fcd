import pytest
import torch

from onefeed.models.unisearch import SearchBatch, UniSearch, UniSearchConfig

CFG = UniSearchConfig(d_model=16, n_heads=2, d_ff=32, query_layers=1, item_layers=1,
                      decoder_layers=1, n_levels=3, codebook_size=5, max_query_words=4,
                      max_item_words=5, n_words=50, dropout=0.0)


def batch(n_hard: int = 0) -> SearchBatch:
    g = torch.Generator().manual_seed(0)
    qw = torch.randint(1, 51, (4, 4), generator=g)
    qw[0, 2:] = 0
    iw = torch.randint(1, 51, (4, 5), generator=g)
    hard = torch.randint(1, 51, (4, 2, n_hard, 5), generator=g) if n_hard else None
    return SearchBatch(qw, iw, torch.tensor([0, 1, 2, 1]), hard)


@pytest.mark.parametrize("update", ["ema", "grad", "simvq"])
def test_loss_parts_and_gradients_reach_every_tower(update):
    torch.manual_seed(0)
    model = UniSearch(UniSearchConfig(**{**CFG.__dict__, "codebook_update": update}))
    parts = model.loss(batch(n_hard=2))
    assert set(parts) == {"loss", "rcl", "codebook", "commit", "nll", "rcl_l0", "rcl_l1",
                          "rcl_l2"}
    want = (CFG.rcl * parts["rcl"] + CFG.commit * parts["commit"] + CFG.nll * parts["nll"]
            + (0 if update == "ema" else CFG.codebook * parts["codebook"]))
    assert parts["loss"].item() == pytest.approx(want.item(), rel=1e-6)
    parts["loss"].backward()
    for name in ("query_blocks.0.qkv.weight", "item_blocks.0.qkv.weight", "item_tokens",
                 "dec_blocks.0.q.weight", "out", "word_tok.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    if update != "ema":
        book = model.codebooks if update == "grad" else model.simvq
        assert book.grad.abs().sum() > 0


def test_first_training_batch_initialises_the_codebook_and_ema_moves_it():
    torch.manual_seed(0)
    model = UniSearch(CFG)
    assert not model.initialised
    model.loss(batch())
    assert model.initialised
    before = model.ema_embed.clone()
    model.loss(batch())
    assert not torch.equal(before, model.ema_embed)
    model.eval()
    frozen = model.ema_embed.clone()
    model.loss(batch())  # no update outside training
    assert torch.equal(frozen, model.ema_embed)


def test_item_latents_are_causal_across_levels_and_ignore_padding():
    torch.manual_seed(0)
    model = UniSearch(CFG).eval()
    words = torch.tensor([[3, 4, 5, 0, 0]])
    lat = model.encode_items(words)
    more_pad = model.encode_items(torch.tensor([[3, 4, 5, 0, 0, 0]])[:, :5])
    assert torch.allclose(lat, more_pad)
    # changing the last learnable token cannot change the earlier levels
    with torch.no_grad():
        model.item_tokens[2] += 1.0
    lat2 = model.encode_items(words)
    assert torch.allclose(lat[:, :2], lat2[:, :2]) and not torch.allclose(lat[:, 2], lat2[:, 2])


def test_quantise_picks_the_nearest_code_per_level():
    model = UniSearch(CFG)
    books = model.codebook_vectors()
    lat = torch.stack([books[0, 3], books[1, 1], books[2, 4]]).unsqueeze(0) + 1e-4
    codes, q, _ = model.quantise(lat)
    assert codes.tolist() == [[3, 1, 4]]
    assert torch.allclose(q[0], torch.stack([books[0, 3], books[1, 1], books[2, 4]]))


def test_step_matches_teacher_forced_log_probs():
    torch.manual_seed(0)
    model = UniSearch(CFG).eval()
    state = model.search_state(batch().query_words)
    codes = torch.tensor([[1, 2, 3], [0, 0, 4], [4, 3, 2], [2, 2, 2]])
    tf = model.code_log_probs(state, codes)
    for level in range(3):
        logp, _ = model.step(state, codes[:, :level], level)
        assert torch.allclose(logp.gather(1, codes[:, level:level + 1])[:, 0], tf[:, level],
                              atol=1e-5)


def test_assign_codes_is_deterministic_and_batch_independent():
    torch.manual_seed(0)
    model = UniSearch(CFG)
    model.loss(batch())  # initialise the codebook from data
    words = torch.randint(1, 51, (7, 5))
    a = model.assign_codes(words)
    b = model.assign_codes(words, batch_size=2)
    assert a.shape == (7, 3) and (a == b).all() and model.training


def test_minilm_initialisation_copies_the_word_table():
    from onefeed.models.unisearch import minilm_word_embeddings

    model = UniSearch(UniSearchConfig(**{**CFG.__dict__, "n_words": 30522, "minilm_init": True,
                                         "freeze_words": True}))
    table = minilm_word_embeddings()
    assert torch.equal(model.word_tok.weight[1:], table) and not model.word_tok.weight.requires_grad
    assert model.encode_items(torch.tensor([[2001, 2002, 0, 0, 0]])).shape == (1, 3, 16)


@pytest.mark.parametrize("update", ["ema", "grad"])
def test_an_unused_code_restarts_at_the_worst_quantised_latent(update):
    torch.manual_seed(0)
    model = UniSearch(UniSearchConfig(**{**CFG.__dict__, "codebook_update": update,
                                         "dead_code": 0.5}))
    model.initialised.fill_(True)
    books = model.codebook_vectors().detach().clone()
    latents = books[:, :1].transpose(0, 1).repeat(4, 1, 1)  # every row sits on code 0
    latents[2, 1] += 3.0  # row 2 is level 1's worst-quantised latent
    codes, quantised, _ = model.quantise(latents)
    model.usage.fill_(1.0)
    model.usage[1, 4] = 0.01  # level 1, code 4: dead (< 0.5 x 4 / 5)
    model.update_codebooks(latents, codes, quantised)
    assert torch.allclose(model.codebook_vectors()[1, 4], latents[2, 1])
    assert model.usage[1, 4].item() == pytest.approx(4 / 5)


def test_catalogue_items_join_the_codebook_update_and_eq3():
    torch.manual_seed(0)
    model = UniSearch(UniSearchConfig(**{**CFG.__dict__, "ema_decay": 0.5, "dead_code": 0.0}))
    b = batch()
    model.loss(b)  # initialise
    cat = torch.randint(1, 51, (6, 5), generator=torch.Generator().manual_seed(1))
    model.usage.fill_(0.0)
    model.eval()  # Eq. 3 without the EMA step, to compare with the pairs alone
    alone = model.loss(b)["commit"].item()
    both = model.loss(b._replace(catalogue_words=cat))["commit"].item()
    lat = model.encode_items(torch.cat([b.item_words, cat]))
    _, q, inputs = model.quantise(lat)
    assert both == pytest.approx((inputs - q).pow(2).sum((1, 2)).mean().item(), rel=1e-5)
    assert both != pytest.approx(alone)
    model.train()
    model.loss(b._replace(catalogue_words=cat))
    assert model.usage.sum(1).tolist() == pytest.approx([0.5 * (4 + 6)] * 3)  # 4 pairs + 6


def test_residual_quantiser_codes_what_the_earlier_levels_missed():
    cfg = UniSearchConfig(**{**CFG.__dict__, "n_levels": 2, "codebook_size": 2, "d_model": 2,
                             "n_heads": 1, "quantiser": "residual", "codebook_update": "grad"})
    model = UniSearch(cfg)
    with torch.no_grad():
        model.codebooks.copy_(torch.tensor([[[0.0, 0.0], [4.0, 0.0]],
                                            [[1.0, 0.0], [-1.0, 0.0]]]))
    lat = torch.tensor([[[3.0, 0.0], [0.5, 0.0]]])  # cumulative: 3 then 3.5
    codes, e, inputs = model.quantise(lat)
    assert codes.tolist() == [[1, 1]]  # 3 -> 4; 3.5 - 4 = -0.5 -> -1
    assert inputs[0, :, 0].tolist() == [3.0, -0.5] and e[0, :, 0].tolist() == [4.0, -1.0]
    per_level = UniSearch(UniSearchConfig(**{**cfg.__dict__, "quantiser": "per_level"}))
    per_level.codebooks.data.copy_(model.codebooks.data)
    assert per_level.quantise(lat)[0].tolist() == [[1, 0]]  # 0.5 -> 1 on its own


@pytest.mark.parametrize("update", ["ema", "grad", "simvq"])
def test_residual_quantiser_trains_and_initialises_every_level(update):
    torch.manual_seed(0)
    model = UniSearch(UniSearchConfig(**{**CFG.__dict__, "quantiser": "residual",
                                         "codebook_update": update}))
    parts = model.loss(batch(n_hard=1))
    parts["loss"].backward()
    assert torch.isfinite(parts["loss"]) and model.initialised
    assert model.get_parameter("item_tokens").grad.abs().sum() > 0


def test_history_token_changes_the_query_state_only_when_present():
    torch.manual_seed(0)
    model = UniSearch(UniSearchConfig(**{**CFG.__dict__, "history_items": 10})).eval()
    words = batch().query_words[:2]
    q0, _, ok0 = model.encode_query(words)
    q_pad, _, ok_pad = model.encode_query(words, torch.full((2, 3), -1))
    q_hist, _, ok = model.encode_query(words, torch.tensor([[1, 2, -1], [3, -1, -1]]))
    assert ok.shape[1] == ok0.shape[1] + 1 and ok[:, 1].all() and not ok_pad[:, 1].any()
    assert torch.allclose(q0, q_pad, atol=1e-6)  # an empty history is masked out
    assert not torch.allclose(q0, q_hist)
    parts = model.train().loss(batch()._replace(history=torch.tensor([[1, -1]] * 4)))
    parts["loss"].backward()
    assert model.history_tok.weight.grad[1].abs().sum() > 0


def test_eq4_weights_reweigh_the_generation_loss():
    torch.manual_seed(0)
    model = UniSearch(CFG).eval()
    model.initialised.fill_(True)
    b = batch()
    full = model.loss(b)["nll"].item()
    one = model.loss(b._replace(weights=torch.tensor([1.0, 0.0, 0.0, 0.0])))["nll"].item()
    memory_q = model.encode_query(b.query_words[:1])
    codes = model.quantise(model.encode_items(b.item_words[:1]))[0]
    alone = -model.code_log_probs((memory_q[1], memory_q[2]), codes).sum().item()
    assert one == pytest.approx(alone, rel=1e-5) and full != pytest.approx(one)
