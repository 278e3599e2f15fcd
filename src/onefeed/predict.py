"""One predictor over any run directory onefeed writes: ``Predictor.from_run(run_dir)``.

A run is either a joint model (``onefeed joint train``, the ``onefeed`` row of ``onefeed run`` /
the bench: ``runs/<ds>/model/<row>/seed<S>``, manifest kind ``joint-generative``), the
recommendation-only generative core (``onefeed train``, the ``tiger`` row) or a UniSearch
search-only model (``onefeed unisearch train``, kind ``unisearch``: ``search`` and ``score`` with
queries only, no history). They answer the same calls, batched (one row per user or explicit
history):

- ``recommend(who, k, beam, exclude_seen)``: next items (NRIP);
- ``search(queries, who, k, beam, fuse_bm25)``: items for a query, personalised by the history
  (NSIP; optionally BM25's top candidates re-scored by the model, ``search.fusion``);
- ``suggest(who, k, beam)``: the next queries (NSQP);
- ``score(who, candidates, queries)``: teacher-forced log p of given items.

``who`` rows are a user id (their logged history; ``split`` says where it ends: ``all`` = the
whole log, ``valid`` / ``test`` = before that split's target, as ``onefeed joint recommend``) or
an explicit list of ``Event``s. A rec-only run reads item events only and raises
``Unsupported`` for search and suggestions.

The catalogue can change at run time (UniSearch §3.4): ``add_item`` embeds the item's text with
the packaged MiniLM, quantises it with the run's own SID codebooks, gives it the first free
disambiguation code under its prefix (identifiers stay unique) and puts it into the decoding
tries at once; ``remove_item`` takes it out at once. New items have no learned item embedding
(the model reads them by their codes). On a UniSearch run the codes come from its item encoder
alone (``tasks.unisearch.add_item``: the learned codes, then the first free disambiguation slot
under them, ranked among its collisions by the encoder's item vector) and the item joins the
``LearnedIndex`` trie; a removal frees its slot. ``Catalogue`` is the append-only journal that
makes these changes survive a restart (and reach other worker processes): it records the full
code tuple, which a replay puts back as it is (the vector is recomputed from the journaled text).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, Sequence

import numpy as np
import torch

Behaviour = Literal["rec_click", "search_query", "search_click"]
Split = Literal["all", "valid", "test"]


class PredictError(ValueError):
    """Bad input for a prediction; ``field`` names the request field it came from."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownUser(PredictError):
    pass


class UnknownItem(PredictError):
    pass


class Unsupported(PredictError):
    """The run cannot answer this call (e.g. suggestions from a recommendation-only model)."""


class CatalogueConflict(PredictError):
    """An item id already live, or no free identifier left under its code prefix."""


@dataclass(frozen=True)
class Event:
    behaviour: Behaviour
    item: str | None = None  # item id (items.item_id) for rec_click / search_click
    query: str | None = None  # text for search_query


@dataclass(frozen=True)
class Context:
    """A user's logged history followed by explicit events (either may be empty)."""

    user: str | None = None
    events: tuple[Event, ...] = ()


Who = str | Sequence[Event] | Context


def _parts(row: "Who | None") -> tuple[str | None, list[Event]]:
    if row is None:
        return None, []
    if isinstance(row, str):
        return row, []
    if isinstance(row, Context):
        return row.user, list(row.events)
    return None, list(row)


class Hit(NamedTuple):
    item: str  # item id
    title: str
    score: float  # the model's log-probability (or the fused score)


# ---- the catalogue journal --------------------------------------------------------------------
def catalogue_path(run_dir: Path) -> Path:
    """Default journal beside the run: ``<run>.catalogue.jsonl`` (the run dir is never written)."""
    run_dir = Path(run_dir).resolve()
    return run_dir.parent / f"{run_dir.name}.catalogue.jsonl"


class Catalogue:
    """Append-only JSON-lines journal of item additions and removals, fsynced per change.

    Each line is ``{"op": "add", "item": id, "title": .., "text": .., "codes": [..]}`` or
    ``{"op": "remove", "item": id}``. Appends take an exclusive ``flock`` so several worker
    processes can share one file; ``read_new`` returns the lines written since the last call
    (how a worker picks up another worker's changes). A torn last line (a crash mid-write) is
    ignored until it is complete."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with open(self.path, "ab") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def read_new(self) -> list[dict[str, Any]]:
        if not self.path.exists() or self.path.stat().st_size <= self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # complete lines only
        out = []
        for n, raw in enumerate(data[:end].splitlines()):
            if not raw.strip():
                continue
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{self.path}: unreadable catalogue line after byte "
                                 f"{self.offset} (line {n + 1} of the new part): {exc}") from None
        self.offset += end
        return out


# ---- the predictor ------------------------------------------------------------------------------
class Predictor:
    """A loaded run: the model, its dataset and SIDs, the live catalogue. See the module doc."""

    def __init__(self, kind: str, run_dir: Path, ds: Any, model: Any, vocab: Any, max_len: int,
                 sid_dir: Path, joint: Any = None, rec_codes: np.ndarray | None = None,
                 rec_sizes: tuple[int, ...] | None = None, max_items: int = 0) -> None:
        from onefeed.decoding.trie import Trie

        self.kind, self.run_dir, self.ds, self.model, self.vocab = kind, run_dir, ds, model, vocab
        self.max_len, self.sid_dir, self.joint, self.max_items = max_len, sid_dir, joint, max_items
        items = ds.items.sort("item")
        self.item_ids: list[str] = [str(x) for x in items["item_id"].to_list()]
        self.titles: list[str] = [t or self.item_ids[i]
                                  for i, t in enumerate(items["title"].to_list())]
        self._base_texts: list[str] | None = None  # BM25 corpus, built on first fused search
        self._added_texts: list[str] = []  # texts of items added at run time
        self.index = {iid: i for i, iid in enumerate(self.item_ids)}
        self.n_base = len(self.item_ids)
        users = ds.users.select("user", "user_id")
        self.user_index = {str(a): int(b) for b, a in zip(users["user"].to_list(),
                                                          users["user_id"].to_list())}
        if kind == "joint":
            self.tries = joint.tries
        elif kind == "unisearch":  # model = (UniSearch, tasks.unisearch.LearnedIndex)
            self.tries = {"rec": model[1].trie}
        else:
            self.codes = torch.as_tensor(rec_codes, dtype=torch.long)
            self.trie = Trie.from_table(rec_codes, rec_sizes)
            self.tries = {"rec": self.trie}
            from onefeed.data.views import item_events

            ev = item_events(ds).sort(["user", "position"]).select("user", "item")
            self._rec_items = ev["item"].to_numpy().astype(np.int64)
            counts = np.bincount(ev["user"].to_numpy(), minlength=ds.n_users)
            self._rec_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._bm25 = None
        self.catalogue: Catalogue | None = None

    # ---- loading --------------------------------------------------------------------------------
    @classmethod
    def from_run(cls, run_dir: str | Path, threads: int | None = None,
                 data: str | Path | None = None, sid: str | Path | None = None) -> "Predictor":
        """Load a joint or rec-only run (its best checkpoint; data and SIDs from its manifest
        unless ``data`` / ``sid`` are given, checked against the fingerprints it was trained
        on)."""
        from onefeed.artifacts import ArtifactError, read_json_object
        from onefeed.checkpoint import check_trained_on
        from onefeed.data.schemas import Dataset
        from onefeed.sid.table import SidTable, check_dataset

        run_dir = Path(run_dir)
        if not (run_dir / "best").is_dir():
            raise PredictError(f"{run_dir}: no trained run here (no best/ checkpoint dir)")
        if not (run_dir / "manifest.json").is_file():
            raise PredictError(f"{run_dir}: no manifest.json (not written by onefeed train)")
        manifest = read_json_object(run_dir / "manifest.json", f"{run_dir}: not a readable "
                                    "manifest", PredictError)
        if manifest.get("kind") == "unisearch" and not (sid or manifest.get("sid")):
            sid = run_dir / str(manifest.get("codes", "codes"))  # its frozen learned codes
        dirs = {}
        for name, given in (("data", data), ("sid", sid)):
            value = given or manifest.get(name)
            if not value:
                raise PredictError(f"{run_dir}: its manifest names no {name} dir (trained from "
                                   f"in-memory data by a bench adapter); pass --{name}")
            path = Path(value)
            if not path.is_absolute() and not path.exists() and (run_dir / path).exists():
                path = run_dir / path
            if not path.is_dir():
                raise PredictError(f"{run_dir}: {name} dir {value} does not exist")
            dirs[name] = path
        check_trained_on(run_dir, manifest, dirs["data"], dirs["sid"])
        if manifest.get("kind") == "unisearch":
            from onefeed.tasks.unisearch import load_frozen

            ds = Dataset.load(dirs["data"])
            model, index = load_frozen(dirs["sid"])
            if index.table.n_items != ds.n_items:
                raise ArtifactError(f"{run_dir}: its codes hold {index.table.n_items} items, "
                                    f"{dirs['data']} has {ds.n_items}: pass the dataset it "
                                    "was trained on")
            if threads:
                torch.set_num_threads(threads)
            return cls("unisearch", run_dir, ds, (model, index), None, 0, dirs["sid"])
        check_dataset(dirs["sid"], dirs["data"])
        ds = Dataset.load(dirs["data"])
        if manifest.get("kind") == "joint-generative":
            from onefeed.train import joint as tj

            model, run_cfg, vocab = tj.load_joint(run_dir / "best")
            pred = tj.predictor(model, run_cfg, ds, dirs["sid"])
            if threads:
                torch.set_num_threads(threads)
            return cls("joint", run_dir, ds, model.eval(), vocab, run_cfg.model.max_len,
                       dirs["sid"], joint=pred, max_items=run_cfg.tasks.max_history_items)
        from onefeed.train.rec import load_model

        try:
            model, run_cfg, vocab = load_model(run_dir / "best")
        except (KeyError, TypeError) as exc:
            raise ArtifactError(f"{run_dir}/best: not a generative checkpoint ({exc})") from None
        table = SidTable.load(dirs["sid"])
        if threads:
            torch.set_num_threads(threads)
        return cls("rec", run_dir, ds, model.eval(), vocab, run_cfg.model.max_len, dirs["sid"],
                   rec_codes=table.codes, rec_sizes=table.codebook_sizes)

    def describe(self) -> dict[str, Any]:
        return {"run": str(self.run_dir), "kind": self.kind, "dataset": self.ds.name,
                "n_users": len(self.user_index), "n_items": self.n_live,
                "n_added": len(self.item_ids) - self.n_base,
                "tasks": ["search", "score"] if self.kind == "unisearch" else
                ["recommend", "score"] + (["search", "suggest"] if self.kind == "joint" else [])}

    @property
    def n_live(self) -> int:
        return len(self.tries["rec"])

    def _forget_states(self) -> None:
        cache = getattr(self.joint, "state_cache", None)
        if cache is not None:  # a history may read differently (e.g. a re-added item's codes)
            cache.clear()

    def cache_states(self, capacity: int) -> Any:
        """Reuse encoded histories across calls (``decoding.state_cache``): up to
        ``capacity`` history states of /recommend and /suggest rows and history keys / values of
        /search rows (the query is encoded on top); -> the cache (None: this kind of run
        encodes no history, or ``capacity`` is 0)."""
        if self.kind != "joint" or capacity <= 0:
            return None
        from onefeed.decoding.state_cache import StateCache

        self.joint.state_cache = StateCache(capacity)
        return self.joint.state_cache

    # ---- ids ------------------------------------------------------------------------------------
    def user(self, user_id: str, field: str = "user") -> int:
        u = self.user_index.get(str(user_id))
        if u is None:
            raise UnknownUser(f"{field}: unknown user {user_id!r} (not in "
                              f"{self.ds.name}'s users)", field)
        return u

    def item(self, item_id: str, field: str = "item", live: bool = True) -> int:
        i = self.index.get(str(item_id))
        if i is None or (live and i not in self.tries["rec"]):
            raise UnknownItem(f"{field}: unknown item {item_id!r}"
                              + (" (removed from the catalogue)" if i is not None else ""), field)
        return i

    def _hits(self, items: np.ndarray, scores: np.ndarray, k: int) -> list[list[Hit]]:
        out = []
        for row, srow in zip(items.tolist(), scores.tolist()):
            out.append([Hit(self.item_ids[i], self.titles[i], float(s))
                        for i, s in zip(row, srow) if i >= 0][:k])
        return out

    # ---- histories --------------------------------------------------------------------------
    def _user_flat(self, u: int, split: Split, room: int) -> np.ndarray:
        """Flat event indices (joint data) of user ``u``'s history, at most ``room`` events."""
        from onefeed.tasks.joint import S_Q, history_before

        jd = self.joint.jd
        if split != "all":
            idx = history_before(jd, np.array([u]), split, room, max_items=self.max_items)[0]
            return idx[idx >= 0]
        lo, hi = int(jd.user_start[u]), int(jd.user_start[u + 1])
        keep = np.arange(max(lo, hi - room), hi)
        if self.max_items and len(keep):
            is_item = jd.behaviour[keep] != S_Q
            keep = keep[np.cumsum(is_item[::-1])[::-1] <= self.max_items]
        return keep

    def _joint_rows(self, who: Sequence[Who | None], split: Split,
                    queries: Sequence[str] | None = None, field: str = "user"):
        """Rows -> (mini JointData holding just these events, (n, max_len) indices into it)."""
        from onefeed.tasks.joint import BEHAVIOUR_NAMES, S_Q, JointData, encode_texts

        jd = self.joint.jd
        if queries is None and split == "all" and all(isinstance(row, str) for row in who):
            return jd, self._logged_rows(np.array([self.user(u, field) for u in who]))
        codes = {v: k for k, v in BEHAVIOUR_NAMES.items()}
        extra = 0 if queries is None else 1
        room = self.max_len - extra
        beh, item, qref = [], [], []  # qref: ("main", row) or ("text", str)
        lengths = []
        for r, row in enumerate(who):
            b, it, q = [], [], []
            user, events = _parts(row)
            events = events[-room:] if room else []
            if user is not None and room - len(events) > 0:
                flat = self._user_flat(self.user(user, field), split, room - len(events))
                b, it = jd.behaviour[flat].tolist(), jd.item[flat].tolist()
                q = [("main", int(x)) for x in jd.query[flat].tolist()]
            if events:
                for e in events:
                    code = codes[e.behaviour]
                    b.append(code)
                    if code == S_Q:
                        if not e.query or not e.query.strip():
                            raise PredictError(f"history: a {e.behaviour} event needs a query",
                                               "history")
                        it.append(-1)
                        q.append(("text", e.query))
                    else:
                        if e.item is None:
                            raise PredictError(f"history: a {e.behaviour} event needs an item",
                                               "history")
                        it.append(self.item(e.item, "history", live=False))
                        q.append(("main", -1))
            if queries is not None:
                b.append(S_Q)
                it.append(-1)
                q.append(("text", queries[r]))
            beh.append(b), item.append(it), qref.append(q), lengths.append(len(b))
        # one query table for the batch: the logged rows used + the new texts
        if len(getattr(self, "_query_rows", ())) != len(jd.query_text):
            self._query_rows = {t: i for i, t in enumerate(jd.query_text)}
        index = self._query_rows
        main_rows: dict[int, int] = {}
        texts: dict[str, int] = {}
        flat_q = []
        for q in qref:
            for kind, val in q:
                if kind == "main" and val >= 0:
                    flat_q.append(main_rows.setdefault(val, len(main_rows)))
                elif kind == "text" and val in index:
                    flat_q.append(main_rows.setdefault(index[val], len(main_rows)))
                elif kind == "text":
                    flat_q.append(-2 - texts.setdefault(val, len(texts)))
                else:
                    flat_q.append(-1)
        width = jd.query_words.shape[1]
        words = np.concatenate([jd.query_words[list(main_rows)].reshape(-1, width),
                                encode_texts(list(texts), self.vocab, width),
                                np.zeros((1, width), dtype=np.int64)])  # never empty
        fq = np.asarray(flat_q, dtype=np.int64)
        fq = np.where(fq <= -2, len(main_rows) + (-2 - fq), fq)
        n_ev = int(sum(lengths))
        mini = JointData(np.asarray([x for b in beh for x in b], dtype=np.int8).reshape(n_ev),
                         np.asarray([x for i in item for x in i], dtype=np.int64).reshape(n_ev),
                         fq.reshape(n_ev), np.zeros(n_ev, np.int8), np.zeros(n_ev, np.int64),
                         np.array([0, n_ev], dtype=np.int64), words,
                         [""] * len(words))
        idx = np.full((len(lengths), self.max_len), -1, dtype=np.int64)
        start = 0
        for r, n in enumerate(lengths):
            if n:
                idx[r, self.max_len - n:] = np.arange(start, start + n)
            start += n
        return mini, idx

    def _logged_rows(self, users: np.ndarray) -> np.ndarray:
        """(n,) users -> (n, max_len) left-padded indices into the joint data of each whole
        logged history (``_user_flat`` with split "all", vectorised: the rows of a batch of
        bare user ids need no mini data)."""
        from onefeed.tasks.joint import S_Q

        jd = self.joint.jd
        lo, hi = jd.user_start[users][:, None], jd.user_start[users + 1][:, None]
        idx = hi - self.max_len + np.arange(self.max_len)  # the last max_len positions
        valid = idx >= lo
        if self.max_items:  # at most max_items item events, counted from the end
            items = valid & (jd.behaviour[np.maximum(idx, 0)] != S_Q)
            valid &= np.cumsum(items[:, ::-1], axis=1)[:, ::-1] <= self.max_items
        return np.where(valid, idx, -1).astype(np.int64)

    def _rec_rows(self, who: Sequence[Who], field: str = "user") -> np.ndarray:
        """Rows -> (n, max_len) left-padded item ids (a rec-only model reads item events)."""
        out = np.full((len(who), self.max_len), -1, dtype=np.int64)
        for r, row in enumerate(who):
            user, events = _parts(row)
            items = np.zeros(0, dtype=np.int64)
            if user is not None:
                u = self.user(user, field)
                items = self._rec_items[self._rec_start[u]:self._rec_start[u + 1]]
            if events:
                items = np.concatenate([items, np.array(
                    [self.item(e.item, "history", live=False) for e in events
                     if e.behaviour != "search_query" and e.item is not None], dtype=np.int64)])
            tail = items[-self.max_len:]
            if len(tail):
                out[r, self.max_len - len(tail):] = tail
        return out

    # ---- tasks ------------------------------------------------------------------------------
    def recommend(self, who: Sequence[Who], k: int, beam: int | None = None,
                  exclude_seen: bool = False, split: Split = "all") -> list[list[Hit]]:
        """Next items per row, best first (at most k; fewer if the catalogue runs out)."""
        from onefeed.evaluation.generative import recommend, recommend_unseen
        from onefeed.evaluation.seen import decode_unseen

        beam = max(beam or k, k)
        self._need_history_model("recommend")
        if not who:
            return []
        if self.kind == "rec":
            if split != "all":
                raise Unsupported(f"split {split!r}: a recommendation-only run reads the whole "
                                  "log (split 'all')", "split")
            hist = self._rec_rows(who)
            decode = recommend_unseen if exclude_seen else recommend
            items, scores = decode(self.model, hist, self.codes, self.vocab, self.trie, beam, k)
            return self._hits(items, scores, k)
        mini, idx = self._joint_rows(who, split)
        pred, keys = self.joint, self._state_keys(who, split)
        if exclude_seen:
            hist = np.where(idx >= 0, mini.item[np.maximum(idx, 0)], -1)
            items, scores = decode_unseen(
                lambda rows, b, kk: pred._decode(idx[rows], "NRIP", "rec", b, kk, mini,
                                                 keys and [keys[r] for r in rows]),
                np.arange(len(idx)), hist, beam, k)
        else:
            items, scores = pred._decode(idx, "NRIP", "rec", beam, k, mini, keys)
        return self._hits(items, scores, k)

    def _state_keys(self, who: Sequence[Who | None], split: Split) -> list[Any] | None:
        """Cache keys of rows that are a logged user's history alone: (user, split); None for
        an explicit history (the cache keys it by content); None for all without a cache."""
        if getattr(self.joint, "state_cache", None) is None:
            return None
        keys: list[Any] = []
        for row in who:
            user, events = _parts(row)
            keys.append(("user", self.user(user), split) if user is not None and not events
                        else None)
        return keys

    def _need_history_model(self, what: str) -> None:
        if self.kind == "unisearch":
            raise Unsupported(f"{what}: {self.run_dir} is a UniSearch run (onefeed unisearch "
                              "train): it answers search and scores items for a query only; "
                              "serve a joint run (onefeed joint train) for it")

    def _need_joint(self, what: str) -> None:
        self._need_history_model(what)
        if self.kind != "joint":
            raise Unsupported(f"{what}: {self.run_dir} is a recommendation-only run (onefeed "
                              "train) without a search / query head; serve a joint run "
                              "(onefeed joint train) for it")

    def search(self, queries: Sequence[str], who: Sequence[Who | None], k: int,
               beam: int | None = None, fuse_bm25: float | None = None, bm25_depth: int = 100,
               split: Split = "all") -> list[list[Hit]]:
        """Items per (query, history) row. ``fuse_bm25`` = lambda: BM25's top ``bm25_depth``
        live items re-scored by bm25/max + lambda * the model's log p (``score_fusion``)."""
        from onefeed.search.fusion import SCORE_FLOOR, score_fusion

        if self.kind != "unisearch":
            self._need_joint("search")
        if not queries:
            return []
        for q in queries:
            if not q or not q.strip():
                raise PredictError("query is empty", "query")
        if self.kind == "unisearch":  # the query alone: a known user is accepted, not read
            for row in who:
                user, _ = _parts(row)
                if user is not None:
                    self.user(user)
            if fuse_bm25 is None:
                return self._unisearch_hits(list(queries), k, max(beam or k, k))
            items, base = self._bm25_candidates(list(queries), max(bm25_depth, k))
            model = self._unisearch_scores(list(queries), items)
        else:
            mini, idx = self._joint_rows(who, split, queries)
            if fuse_bm25 is None:
                items, scores = self.joint._decode(idx, "NSIP", "search", max(beam or k, k), k,
                                                   mini, self._state_keys(who, split))
                return self._hits(items, scores, k)
            items, base = self._bm25_candidates(list(queries), max(bm25_depth, k))
            model = self._score_rows(mini, idx, items, "NSIP", "search",
                                     self._state_keys(who, split))
        fused = score_fusion(items, base, model, fuse_bm25, k)
        # the fused score of each returned item (score_fusion's formula), for the response
        top = np.maximum(base.max(axis=1, keepdims=True), 1e-12)
        value = base / top + fuse_bm25 * np.maximum(model, SCORE_FLOOR)
        pos = (items[:, None, :] == fused[:, :, None]) & (fused[:, :, None] >= 0)
        scores = np.where(pos.any(-1), (value[:, None, :] * pos).sum(-1), -np.inf)
        return self._hits(fused, scores.astype(np.float32), k)

    def _unisearch_hits(self, queries: list[str], k: int, beam: int) -> list[list[Hit]]:
        """Trie-constrained beam search over the learned codes (``tasks.unisearch.search``)."""
        from onefeed.tasks.unisearch import search

        model, index = self.model
        with torch.no_grad():
            res = search(model, index, queries, k, beam)
        return self._hits(res.items.numpy(), res.scores.numpy(), k)

    def _unisearch_scores(self, queries: list[str], items: np.ndarray) -> np.ndarray:
        """(n, D) UniSearch log p(item | query) of candidates (``tasks.unisearch.score_items``)."""
        from onefeed.tasks.unisearch import score_items

        model, index = self.model
        known = np.where(np.isin(items, index.trie.items()), items, -1)
        return score_items(model, index, queries, known)

    def _bm25_candidates(self, queries: list[str], depth: int) -> tuple[np.ndarray, np.ndarray]:
        """BM25 top-``depth`` live items per query (removed items dropped), padded -1 / 0."""
        from onefeed.embeddings.text import item_texts
        from onefeed.search.bm25 import BM25Retriever

        if self._bm25 is None or self._bm25.n_items != len(self.item_ids):
            if self._base_texts is None:
                self._base_texts = item_texts(self.ds.items)
            bm25 = BM25Retriever()
            bm25.fit_texts(self._base_texts + self._added_texts)
            self._bm25 = bm25
        wide = min(depth + (len(self.item_ids) - self.n_live), len(self.item_ids))
        items, scores = self._bm25.retrieve_scores(queries, wide)
        live = np.array([[i >= 0 and i in self.tries["rec"] for i in row]
                         for row in items.tolist()], dtype=bool).reshape(items.shape)
        out = np.full((len(queries), depth), -1, dtype=np.int64)
        out_s = np.zeros((len(queries), depth), dtype=np.float32)
        for r in range(len(queries)):
            keep = np.flatnonzero(live[r])[:depth]
            out[r, :len(keep)], out_s[r, :len(keep)] = items[r, keep], scores[r, keep]
        return out, out_s

    def suggest(self, who: Sequence[Who], k: int, beam: int | None = None,
                max_words: int = 10, split: Split = "all") -> list[list[str]]:
        """The next queries per row (distinct strings, best first)."""
        self._need_joint("suggest")
        if not who:
            return []
        mini, idx = self._joint_rows(who, split)
        return self.joint.generate_from(idx, k, max(beam or k, k), max_words, jd=mini,
                                        keys=self._state_keys(who, split))

    @torch.no_grad()
    def score(self, who: Sequence[Who], candidates: Sequence[Sequence[str]],
              queries: Sequence[str] | None = None, split: Split = "all") -> np.ndarray:
        """(n, D) log p of each row's candidate items (NRIP; NSIP with ``queries``), -inf pad."""
        width = max((len(c) for c in candidates), default=0)
        cand = np.full((len(candidates), width), -1, dtype=np.int64)
        for r, row in enumerate(candidates):
            cand[r, :len(row)] = [self.item(c, "candidates", live=False) for c in row]
        if self.kind == "unisearch":
            if queries is None:
                self._need_history_model("score without a query")
            return self._unisearch_scores(list(queries), cand)
        if self.kind == "rec":
            if queries is not None:
                self._need_joint("score with a query")
            from onefeed.tasks.rec import history_events

            state = self.model.last_state(history_events(self._rec_rows(who), self.codes,
                                                         self.vocab))
            return self._teacher_forced(state, cand, self.codes,
                                        lambda h, c, j: self.model.level_logits(h, c, j))
        mini, idx = self._joint_rows(who, split, queries)
        task, path = ("NRIP", "rec") if queries is None else ("NSIP", "search")
        return self._score_rows(mini, idx, cand, task, path, self._state_keys(who, split))

    def _score_rows(self, mini, idx, cand: np.ndarray, task: str, path: str,
                    keys: list[Any] | None = None) -> np.ndarray:
        pred = self.joint
        with torch.no_grad():
            state = pred._states(idx, task, mini, keys)
        cols = self.model.cols(path)
        codes = torch.as_tensor(pred.layout.path_codes(path))
        return self._teacher_forced(state, cand, codes,
                                    lambda h, c, j: self.model.path_logits(h, c, cols, j))

    @staticmethod
    @torch.no_grad()
    def _teacher_forced(state: torch.Tensor, cand: np.ndarray, codes: torch.Tensor, logits_fn
                        ) -> np.ndarray:
        out = np.full(cand.shape, -np.inf, dtype=np.float32)
        c = torch.as_tensor(cand)
        valid = c >= 0
        if not valid.any():
            return out
        h = state.unsqueeze(1).expand(-1, c.shape[1], -1)[valid]
        path = codes[c[valid]]
        logp = torch.zeros(len(path))
        for j in range(path.shape[1]):
            lg = logits_fn(h, path, j).float()
            logp += lg.log_softmax(-1).gather(1, path[:, j:j + 1]).squeeze(1)
        out[valid.numpy()] = logp.numpy()
        return out

    # ---- catalogue updates --------------------------------------------------------------------
    def _layout_codes(self) -> tuple[np.ndarray, tuple[int, ...]]:
        if self.kind == "rec":
            return self.codes.numpy(), self.trie.codebook_sizes
        return self.joint.layout.codes, self.joint.layout.codebook_sizes

    def encode_item(self, text: str) -> list[int]:
        """The code tuple a new item with ``text`` gets: the run's quantiser on its MiniLM
        embedding (a UniSearch run: its item encoder's learned codes), then the first
        disambiguation code free under that prefix."""
        from onefeed.artifacts import read_json_object
        from onefeed.embeddings.content import encode_texts, load_encoder
        from onefeed.sid.build import load_quantiser

        if self.kind == "unisearch":  # the item encoder alone (cold start, UniSearch §3.4)
            from onefeed.tasks.unisearch import word_ids

            model, index = self.model
            words = torch.as_tensor(word_ids([text], model.cfg.max_item_words))
            learned = [int(c) for c in model.assign_codes(words)[0]]
            return learned + [index.free_slot(learned)]
        manifest = read_json_object(self.sid_dir / "manifest.json",
                                    f"{self.sid_dir}: unreadable SID manifest", ValueError)
        cfg = manifest.get("config", {})
        parts = manifest.get("parts", [])
        layout_kind = "single" if self.kind == "rec" else self.joint.layout.kind
        if cfg.get("strategy") not in ("content", "search") or parts != ["main"] \
                or layout_kind != "single":
            raise Unsupported(f"items: {self.sid_dir} was built with strategy "
                              f"{cfg.get('strategy')!r} (quantizer {cfg.get('quantizer')!r}); "
                              "new items can get codes only from a text-only single SID build "
                              "(strategy content or search), since a new item has no "
                              "collaborative embedding", "text")
        if not hasattr(self, "_encoder"):
            self._encoder = load_encoder()
            self._quantiser = load_quantiser(self.sid_dir / f"{cfg['quantizer']}_main"
                                             ".safetensors")
        x = encode_texts(self._encoder, [text], progress=False,
                         precision=cfg.get("text_precision", "fp32"))
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        sem = np.asarray(self._quantiser.encode(x.astype(np.float32)))[0].astype(np.int64)
        codes, sizes = self._layout_codes()
        n_sem = len(sem)
        if n_sem != codes.shape[1] - 1:
            raise Unsupported(f"items: the SID table has {codes.shape[1]} levels, the quantiser "
                              f"{n_sem}; expected one disambiguation level", "text")
        trie = self.tries["rec"]
        live = trie.items()
        for prefix in self._prefixes(x[0].astype(np.float32), sem):
            same = live[(codes[live, :n_sem] == prefix).all(axis=1)] if len(live) else live
            taken = set(codes[same, n_sem].tolist())
            free = [c for c in range(sizes[n_sem]) if c not in taken]
            if free:
                return [int(c) for c in prefix] + [free[0]]
        raise CatalogueConflict(f"items: every identifier near codes {sem.tolist()} is taken "
                                f"(the disambiguation level has {sizes[n_sem]} codes); remove "
                                "an item first", "text")

    def _prefixes(self, x: np.ndarray, sem: np.ndarray) -> list[np.ndarray]:
        """Semantic code tuples to try, nearest first: the quantiser's own, then (RQ-KMeans)
        the other last-level codes by distance to the last residual — where the item's own
        prefix has no free disambiguation code left, it joins the nearest one that has."""
        cents = getattr(self._quantiser, "centroids", None)
        if cents is None:
            return [sem]
        residual = x - sum(cents[j][sem[j]] for j in range(len(sem) - 1))
        order = np.argsort(((cents[-1] - residual) ** 2).sum(axis=1), kind="stable")
        return [np.r_[sem[:-1], c].astype(np.int64) for c in order]

    def add_item(self, item_id: str, text: str, title: str | None = None,
                 codes: Sequence[int] | None = None) -> dict[str, Any]:
        """Add (or re-add after a removal) an item; searchable and recommendable at once.
        ``codes`` given (a journal replay) are used as they are."""
        item_id = str(item_id)
        self._forget_states()
        old = self.index.get(item_id)
        if old is not None and old in self.tries["rec"]:
            raise CatalogueConflict(f"item: {item_id!r} is already in the catalogue", "item")
        if not text or not text.strip():
            raise PredictError("text is empty", "text")
        if self.kind == "unisearch":
            return self._unisearch_add(item_id, text, title, codes)
        codes = list(codes) if codes is not None else self.encode_item(text)
        table, sizes = self._layout_codes()
        if len(codes) != table.shape[1] or any(not 0 <= c < s for c, s in zip(codes, sizes)):
            raise PredictError(f"codes {codes}: do not fit the SID table (sizes {list(sizes)})",
                               "codes")
        new = len(self.item_ids)
        table = np.concatenate([table, np.asarray([codes], dtype=np.int64)])
        if self.kind == "rec":
            self.trie.add(new, codes)
            self.codes = torch.as_tensor(table, dtype=torch.long)
        else:
            from onefeed.tasks.joint import path_code_tensors

            pred = self.joint
            layout = dataclasses.replace(pred.layout, codes=table)
            for path, trie in pred.tries.items():
                trie.add(new, layout.path_codes(path)[new])
            pred.layout, pred.codes = layout, path_code_tensors(layout)
        return self._register(item_id, text, title, codes)

    def _unisearch_add(self, item_id: str, text: str, title: str | None,
                       codes: Sequence[int] | None) -> dict[str, Any]:
        """A UniSearch run's ``add_item``: ``tasks.unisearch.add_item`` puts the item into the
        LearnedIndex trie with its learned codes (from the item encoder, or the recorded full
        tuple on a replay) and its vector (from ``text``) for ranking colliding items."""
        from onefeed.tasks.unisearch import add_item

        model, index = self.model
        new = len(self.item_ids)
        if codes is not None:
            codes = [int(c) for c in codes]
            sizes = index.table.codebook_sizes
            if len(codes) != len(sizes) or any(not 0 <= c < s for c, s in zip(codes, sizes)):
                raise PredictError(f"codes {codes}: do not fit the learned index (sizes "
                                   f"{list(sizes)})", "codes")
            group = index.members.get(tuple(codes[:-1]), [])
            if codes[-1] < len(group) and group[codes[-1]] >= 0:
                raise CatalogueConflict(f"items: codes {codes} already belong to item "
                                        f"{self.item_ids[group[codes[-1]]]!r}", "codes")
        else:
            codes = self.encode_item(text)
            if codes[-1] >= index.table.codebook_sizes[-1]:
                raise CatalogueConflict(
                    f"items: every disambiguation slot under learned codes {codes[:-1]} is "
                    f"taken (the index keeps {index.table.codebook_sizes[-1]}); remove an item "
                    "first or refreeze the index", "text")
        try:
            full = add_item(model, index, new, text, codes)
        except ValueError as exc:  # e.g. a code past an index frozen with the data's sizes
            raise Unsupported(f"items: {exc}", "text") from None
        return self._register(item_id, text, title, full)

    def _register(self, item_id: str, text: str, title: str | None, codes: Sequence[int]
                  ) -> dict[str, Any]:
        """Name the item just put into the tries at index ``len(item_ids)``."""
        new = len(self.item_ids)
        self.item_ids.append(item_id)
        self.titles.append(title or item_id)
        self._added_texts.append(text)
        self.index[item_id] = new
        return {"item": item_id, "codes": [int(c) for c in codes], "index": new}

    def remove_item(self, item_id: str) -> dict[str, Any]:
        i = self.item(item_id, "item")
        self._forget_states()
        if self.kind == "unisearch":  # frees its disambiguation slot too
            self.model[1].remove(i)
            return {"item": str(item_id), "removed": True}
        for trie in self.tries.values():
            trie.remove(i)
        return {"item": str(item_id), "removed": True}

    # ---- the journal ---------------------------------------------------------------------------
    def attach(self, catalogue: Catalogue) -> int:
        """Replay ``catalogue`` from its start and keep it for ``sync``; -> changes applied."""
        self.catalogue = catalogue
        catalogue.offset = 0
        return self.sync()

    def sync(self) -> int:
        """Apply journal lines written since the last call (by this or another process)."""
        if self.catalogue is None:
            return 0
        n = 0
        for rec in self.catalogue.read_new():
            live = self.index.get(str(rec["item"]))
            is_live = live is not None and live in self.tries["rec"]
            if rec["op"] == "add" and not is_live:
                self.add_item(rec["item"], rec["text"], rec.get("title"), rec["codes"])
                n += 1
            elif rec["op"] == "remove" and is_live:
                self.remove_item(rec["item"])
                n += 1
        return n

    def add_and_log(self, item_id: str, text: str, title: str | None = None) -> dict[str, Any]:
        """``add_item``, then the journal line (fsynced) before returning."""
        self.sync()
        out = self.add_item(item_id, text, title)
        if self.catalogue is not None:
            # our own line is read back by the next sync and skipped (the item is live)
            self.catalogue.append({"op": "add", "item": out["item"], "title": title,
                                   "text": text, "codes": out["codes"]})
        return out

    def remove_and_log(self, item_id: str) -> dict[str, Any]:
        self.sync()
        out = self.remove_item(item_id)
        if self.catalogue is not None:
            self.catalogue.append({"op": "remove", "item": str(item_id)})
        return out
