"""Shilling: new accounts with near-identical item sets that all touch one item.

Three signals, each needed (the tests remove each one and see an honest group alert):

* **new**: the account is first seen later than the warm-up after the log starts (old, loyal
  customers with alike sessions are not profile injection);
* **near-identical**: cosine similarity of the binary account x item matrix (scikit-learn's
  row normalisation and a sparse product in blocks, so memory stays bounded), at least
  ``similarity``;
* **one item**: for each item, the new accounts that touched it are linked by their
  near-identical pairs and split into connected components (SciPy), pruned to the members
  alike to at least ``core_share`` of the others; the accounts within
  ``centroid_similarity`` of the group's centroid join; a group of at least ``min_group``
  accounts alerts. A marketing burst shares the item but not the rest of the
  sessions, so its accounts are not linked.

A group found under several items (the filler items are shared too) is reported once, under the
item it is most concentrated on (its members' share of all accounts touching the item): the
target. Members already reported are left out of later groups.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlhunt.clickhunt.detectors import ClickDetector, GroupAlert

#: Interaction weight per event type, as the recommender's feature job weighs them.
EVENT_WEIGHTS = {"view": 1.0, "cart": 3.0, "purchase": 5.0}
#: Accounts listed by name in one finding (all are counted).
MAX_LISTED = 1000
_BLOCK = 512


class ShillingDetector(ClickDetector):
    def groups(self, events: pa.Table, known: frozenset[str] | None = None) -> list[GroupAlert]:
        if events.num_rows == 0:
            return []
        m = _Matrix(events)
        if known is not None:  # new: not in the reference
            new = ~np.isin(m.users, np.array(sorted(known), dtype=str))
            m.new_rule = f"not among the {len(known):,} accounts of the reference"
        else:
            new = m.new_accounts(self.p("warmup_hours") * 3600.0, self.p("warmup_share"))
        if not self.spec.params.get("new_only", True):  # every account compared (ablation)
            new = np.ones_like(new)
        per_user = np.diff(m.x.indptr)
        cand = np.flatnonzero(new & (per_user >= int(self.p("min_items"))))
        limit = int(self.p("max_accounts"))
        skipped = max(0, len(cand) - limit)
        if skipped:  # the most active new accounts first (a fake profile clicks)
            cand = np.sort(cand[np.argsort(-per_user[cand], kind="stable")[:limit]])
        if len(cand) < int(self.p("min_group")):
            return []
        adj, unit = _similar_pairs(m.weighted()[cand], self.p("similarity"))
        found = self._groups(m, cand, adj)
        out: list[GroupAlert] = []
        taken: set[int] = set()
        for conc, item, members in sorted(found, key=lambda g: (-g[0], g[1])):
            members = np.array([u for u in members if u not in taken], dtype=np.int64)
            if len(members) < int(self.p("min_group")):
                continue
            if m.weight_share(members, item) < self.p("min_weight_share"):
                continue  # too small a part of the item's training data to move it
            taken.update(members.tolist())
            out.append(self._alert(m, cand, unit, item, members, float(conc), skipped))
        return out

    def _groups(
        self, m: _Matrix, cand: np.ndarray, adj: Any
    ) -> list[tuple[float, int, np.ndarray]]:
        """(concentration, item, member accounts) of every group under every item."""
        from scipy.sparse.csgraph import connected_components
        from sklearn.preprocessing import normalize

        min_group = int(self.p("min_group"))
        xc = m.x[cand].tocsc()
        touching_all = np.diff(m.x.tocsc().indptr)  # accounts touching each item
        found = []
        for item in np.flatnonzero(np.diff(xc.indptr) >= min_group):
            rows = xc.indices[xc.indptr[item] : xc.indptr[item + 1]]  # positions in cand
            sub = adj[rows][:, rows]
            n, labels = connected_components(sub, directed=False)
            sizes = np.bincount(labels, minlength=n)
            for comp in np.flatnonzero(sizes >= min_group):
                core = _core(sub, np.flatnonzero(labels == comp), self.p("core_share"))
                if len(core) < min_group:
                    continue
                # the accounts under this item close to the core's centroid join it: plain item
                # sets here (no rarity weights), so a copy that swapped two filler items for
                # rarer ones still joins its group
                plain = normalize(m.x[cand[rows]], norm="l2", axis=1)
                centroid = np.asarray(plain[core].mean(axis=0)).ravel()
                centroid /= np.linalg.norm(centroid) or 1.0
                near = plain @ centroid >= self.p("centroid_similarity")
                members = cand[rows[np.union1d(core, np.flatnonzero(near))]]
                share = self._share(m, members, item)
                if share >= self.p("item_share"):
                    found.append((len(members) / touching_all[item], int(item), members))
        return found

    @staticmethod
    def _share(m: _Matrix, members: np.ndarray, item: int) -> float:
        return float(m.x[members][:, item].sum()) / len(members)

    def _alert(
        self,
        m: _Matrix,
        cand: np.ndarray,
        unit: Any,
        item: int,
        members: np.ndarray,
        conc: float,
        skipped: int,
    ) -> GroupAlert:
        pos = np.searchsorted(cand, members)
        sims = (unit[pos] @ unit[pos].T).toarray()
        off = sims[~np.eye(len(pos), dtype=bool)]
        names = sorted(m.users[members].tolist())
        rows = np.isin(m.uidx, members)
        on_item = rows & (m.iidx == item)
        kinds = {k: int(((m.event == k) & on_item).sum()) for k in EVENT_WEIGHTS}
        sub = m.x[members]
        common = np.flatnonzero(
            np.asarray(sub.sum(axis=0)).ravel() >= self.p("item_share") * len(members)
        )
        ips, counts = np.unique(m.ip[rows & (m.ip != "")], return_counts=True)
        top_ips = [str(ips[i]) for i in np.argsort(-counts, kind="stable")[:5]]
        score = len(members) / self.p("min_group")
        t = m.ts[rows]
        evidence: dict[str, Any] = {
            "item": str(m.items[item]),
            "accounts": names[:MAX_LISTED],
            "accounts_total": len(names),
            "mean_similarity": round(float(off.mean()), 3),
            "min_similarity_linked": round(float(self.p("similarity")), 3),
            "item_accounts_total": int(np.diff(m.x.tocsc().indptr)[item]),
            "group_share_of_item_accounts": round(conc, 3),
            "group_share_of_item_weight": round(m.weight_share(members, item), 3),
            "group_events_on_item": kinds,
            "common_items": sorted(str(m.items[i]) for i in common),
            "accounts_first_seen": [_iso(m.first[members].min()), _iso(m.first[members].max())],
            "new_accounts": m.new_rule,
            "source_ips": len(ips),
            "top_source_ips": top_ips,
            "window": [_iso(m.ts.min()), _iso(m.ts.max())],
        }
        if skipped:
            evidence["new_accounts_not_compared"] = skipped
        return GroupAlert(
            detector=self.spec.id,
            target=str(m.items[item]),
            score=round(score, 3),
            severity=self.spec.severity_for(score) or "info",
            members=names,
            first_event_ts=float(t.min()),
            detected_ts=float(t.max()),
            events=int(rows.sum()),
            evidence=evidence,
        )


class _Matrix:
    """The events as arrays: account and item codes, times (s), and the binary account x item
    matrix (rows without an item only mark when their account was first seen)."""

    def __init__(self, events: pa.Table) -> None:
        from scipy.sparse import csr_matrix

        self.ts = events["ts"].cast(pa.int64()).to_numpy().astype(np.float64) / 1e6
        self.users, self.uidx = np.unique(_strings(events["user"]), return_inverse=True)
        has = events["item"].is_valid().to_numpy(zero_copy_only=False)
        item = _strings(events["item"])
        self.items, codes = np.unique(item[has], return_inverse=True)
        self.iidx = np.full(len(item), -1, dtype=np.int64)
        self.iidx[has] = codes
        self.event = _strings(events["event"])
        self.ip = _strings(events["source_ip"])
        self.weight = np.vectorize(EVENT_WEIGHTS.get, otypes=[float])(self.event, 1.0)
        n_u, n_i = len(self.users), len(self.items)
        self.first = np.full(n_u, np.inf)
        np.minimum.at(self.first, self.uidx, self.ts)
        x = csr_matrix(
            (np.ones(int(has.sum())), (self.uidx[has], codes)), shape=(n_u, n_i), dtype=np.float64
        )
        x.sum_duplicates()
        x.data[:] = 1.0
        self.x = x
        self.new_rule = "every account"

    def weighted(self) -> Any:
        """The binary matrix with each item weighted by its rarity among all accounts (TF-IDF,
        scikit-learn): two accounts sharing only best-sellers are not alike for that."""
        from sklearn.feature_extraction.text import TfidfTransformer

        return TfidfTransformer(norm=None, sublinear_tf=True).fit_transform(self.x).tocsr()

    def weight_share(self, members: np.ndarray, item: int) -> float:
        """The share of ``item``'s interaction weight (view 1, cart 3, purchase 5) that
        ``members`` hold: how much of what the retrain learns about the item is theirs."""
        on_item = self.iidx == item
        total = float(self.weight[on_item].sum())
        return float(self.weight[on_item & np.isin(self.uidx, members)].sum()) / total

    def new_accounts(self, warmup_s: float, share: float) -> np.ndarray:
        t0, t1 = float(self.ts.min()), float(self.ts.max())
        warm = min(warmup_s, share * (t1 - t0))
        if warm <= 0:  # a log with no history before it: nobody can be told new
            self.new_rule = "none (the log has no history)"
            return np.zeros(len(self.users), dtype=bool)
        self.new_rule = f"first seen after {_iso(t0 + warm)}"
        return self.first > t0 + warm


def _core(adj: Any, nodes: np.ndarray, share: float) -> np.ndarray:
    """The nodes each near-identical to at least ``share`` of the others (pruned until stable):
    a chain of pairwise look-alikes is not a group, a set of copies is."""
    while len(nodes) > 1:
        deg = np.asarray(adj[nodes][:, nodes].sum(axis=1)).ravel()
        keep = deg >= share * (len(nodes) - 1)
        if keep.all():
            break
        nodes = nodes[keep]
    return nodes


def _similar_pairs(x: Any, threshold: float) -> tuple[Any, Any]:
    """(symmetric adjacency of the rows whose cosine is at least ``threshold``, the unit rows),
    computed in blocks of rows so the dense part of the product stays small."""
    from scipy.sparse import csr_matrix
    from sklearn.preprocessing import normalize

    unit = normalize(x, norm="l2", axis=1).tocsr()
    n = unit.shape[0]
    rows, cols = [], []
    for start in range(0, n, _BLOCK):
        block = (unit[start : start + _BLOCK] @ unit.T).tocoo()
        keep = (block.data >= threshold - 1e-9) & (block.row + start != block.col)
        rows.append(block.row[keep] + start)
        cols.append(block.col[keep])
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    adj = csr_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(n, n))
    return adj, unit


def _strings(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(col, "").to_numpy(zero_copy_only=False), dtype=str)


def _iso(ts: float) -> str:
    from mlhunt.hunt.alerts import rfc3339

    return rfc3339(float(ts))
