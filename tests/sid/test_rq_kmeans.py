import numpy as np

from onefeed.sid.rq_kmeans import RQKMeans, RQKMeansConfig, nearest


def clusters(n_clusters=8, per=30, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)) * 10
    x = np.repeat(centres, per, axis=0) + rng.standard_normal((n_clusters * per, dim)) * 0.1
    return x.astype(np.float32), np.repeat(np.arange(n_clusters), per)


def test_separated_clusters_get_distinct_first_codes():
    x, label = clusters()
    codes = RQKMeans.fit(x, RQKMeansConfig(levels=2, codebook_size=8, seed=0)).encode(x)
    # one first-level code per cluster, and different clusters never share one
    for c in range(8):
        assert len(set(codes[label == c, 0])) == 1
    assert len({codes[label == c, 0][0] for c in range(8)}) == 8


def test_reconstruction_error_falls_with_levels():
    x = np.random.default_rng(1).standard_normal((500, 8)).astype(np.float32)
    errors = RQKMeans.fit(x, RQKMeansConfig(levels=4, codebook_size=16)).residual_errors(x)
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[0] < float((x ** 2).sum(1).mean())


def test_same_seed_same_codes_and_save_load_round_trip(tmp_path):
    x = np.random.default_rng(2).standard_normal((300, 8)).astype(np.float32)
    cfg = RQKMeansConfig(levels=3, codebook_size=16, seed=7)
    a, b = RQKMeans.fit(x, cfg), RQKMeans.fit(x, cfg)
    assert np.array_equal(a.encode(x), b.encode(x))
    a.save(tmp_path / "rq.safetensors")
    loaded = RQKMeans.load(tmp_path / "rq.safetensors")
    assert loaded.config == cfg
    cold = np.random.default_rng(3).standard_normal((20, 8)).astype(np.float32)
    assert np.array_equal(loaded.encode(x), a.encode(x))
    assert np.array_equal(loaded.encode(cold), a.encode(cold))


def test_fewer_points_than_codes_shrinks_the_codebook():
    x = np.eye(5, dtype=np.float32)
    rq = RQKMeans.fit(x, RQKMeansConfig(levels=2, codebook_size=256))
    assert rq.codebook_sizes[0] == 5
    assert len({tuple(r) for r in rq.encode(x)}) == 5


def test_nearest_matches_brute_force():
    rng = np.random.default_rng(4)
    x, c = rng.standard_normal((50, 6)), rng.standard_normal((9, 6))
    brute = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
    assert np.array_equal(nearest(x, c, chunk=7), brute)


def test_balanced_assign_respects_capacity_and_matches_nearest_when_loose():
    from onefeed.sid.rq_kmeans import balanced_assign, distances

    rng = np.random.default_rng(5)
    x, c = rng.standard_normal((40, 4)), rng.standard_normal((5, 4))
    tight = balanced_assign(distances(x, c), capacity=8)
    assert np.bincount(tight, minlength=5).max() <= 8
    assert np.array_equal(balanced_assign(distances(x, c), capacity=40), nearest(x, c))


def test_balanced_rq_kmeans_spreads_codes_and_is_reproducible(tmp_path):
    x = np.random.default_rng(6).standard_normal((256, 32)).astype(np.float32)
    cfg = RQKMeansConfig(levels=3, codebook_size=16, niter=5, seed=0, balanced=True)
    rq = RQKMeans.fit(x, cfg)
    codes = rq.encode_balanced(x)
    for level in range(3):
        assert np.bincount(codes[:, level]).max() <= 16
    plain = RQKMeans.fit(x, RQKMeansConfig(levels=3, codebook_size=16, niter=5, seed=0))
    assert len(np.unique(codes, axis=0)) >= len(np.unique(plain.encode(x), axis=0))
    rq.save(tmp_path / "b.safetensors")
    train = np.arange(256) < 200
    assert np.array_equal(RQKMeans.load(tmp_path / "b.safetensors").encode_split(x, train),
                          rq.encode_split(x, train))


def test_fit_rows_is_a_seeded_sorted_sample():
    from onefeed.sid.rq_kmeans import fit_rows

    assert fit_rows(5, 0, 0).tolist() == [0, 1, 2, 3, 4] == fit_rows(5, 9, 0).tolist()
    a, b = fit_rows(1000, 100, 3), fit_rows(1000, 100, 3)
    assert len(a) == 100 == len(np.unique(a)) and (np.diff(a) > 0).all()
    assert np.array_equal(a, b) and not np.array_equal(a, fit_rows(1000, 100, 4))


def test_batched_encode_equals_one_batch(monkeypatch):
    from onefeed.sid import rq_kmeans

    x, _ = clusters(per=40)
    q = RQKMeans.fit(x, RQKMeansConfig(levels=3, codebook_size=8))
    whole = q.encode(x)
    monkeypatch.setattr(rq_kmeans, "ENCODE_BATCH", 7)
    assert np.array_equal(q.encode(x), whole)
    seen = []
    assert np.array_equal(q.encode_split(x, np.ones(len(x), bool), seen.append), whole)
    assert sum(seen) == len(x) and max(seen) == 7


def test_sampled_fit_uses_the_sample_and_encodes_the_rest_by_nearest():
    from onefeed.sid.rq_kmeans import fit_rows

    x, _ = clusters(per=50)
    cfg = RQKMeansConfig(levels=2, codebook_size=8, seed=1, balanced=True, sample=120)
    q = RQKMeans.fit(x, cfg)
    rows = fit_rows(len(x), 120, 1)
    on_sample = RQKMeans.fit(x[rows], RQKMeansConfig(levels=2, codebook_size=8, seed=1,
                                                     balanced=True))
    for a, b in zip(q.centroids, on_sample.centroids):
        assert np.array_equal(a, b)  # fitted on exactly the sampled rows
    codes = q.encode_split(x, np.ones(len(x), bool))
    assert np.array_equal(codes[rows], q.encode_balanced(x[rows]))
    rest = np.setdiff1d(np.arange(len(x)), rows)
    assert np.array_equal(codes[rest], q.encode(x[rest]))
