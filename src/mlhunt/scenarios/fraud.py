"""Card fraud detection: the seed brief's third scenario, built for real.

    "You are tasked with building a high-availability, low-latency fraud detection system that
     processes sensitive financial transactions in real-time, with strict regulatory (PCI-DSS)
     and intellectual property (model secrecy) requirements."

``build`` does this on this machine, in seconds:

1. **Transactions.** A seeded, vectorised generator (:func:`generate_transactions`) draws card
   authorisations as the issuer's feature pipeline would see them (one row per authorisation,
   features already joined from the card's history): the amount (log-normal per merchant
   category, scaled by the card's own 30-day average spend), the merchant category, the hour of
   day (a daily rhythm: quiet at night, peaks at lunch and early evening), the channel (POS,
   e-commerce, ATM) and whether the card was present, velocity counters (the card's other
   transactions in the last hour and the last 24 hours), the distance between the transaction
   (terminal, or IP geolocation online) and the cardholder's home, a new-device flag (a device
   fingerprint or wallet token never seen on this card) and a card-country mismatch flag.
   About 1 % of the rows are fraud, drawn from four patterns: card-not-present high-value
   purchases at night (electronics, jewellery, gift cards, travel), card-testing velocity
   bursts (many tiny online charges), cloned cards used far from home at terminals and ATMs,
   and account takeover (a new device spending several times the card's usual amount). Fraud
   is camouflaged (each behavioural feature of a fraud row is replaced by a legitimate draw with
   probability 0.25) and the labels are noisy, as chargeback labels are: 4 % of frauds are never
   reported (labelled legit) and 0.05 % of legitimate transactions are disputed ("friendly
   fraud"). The classes overlap, so the model is good, not perfect.
2. **Split**: a stratified 75/25 train/holdout split, recorded in ``transactions.npz`` so
   membership inference can be scored honestly.
3. **Model**: scikit-learn ``HistGradientBoostingClassifier`` with early stopping and a small
   tree budget (at most 120 trees of 31 leaves) so one authorisation scores in about a
   millisecond; merchant category and channel are ordinal codes (see :func:`new_model`).
   PR-AUC (average precision) and ROC AUC are measured on the holdout, with the holdout's fraud
   base rate beside them.
4. **Artifact**: the weights are the trade secret, and never a pickle. ``model.skops`` is a
   skops file (a zip of JSON and ``.npy`` arrays); :func:`load_model` checks its SHA-256 against
   ``model.json`` and loads it with an explicit trusted-types list (:data:`TRUSTED_TYPES`):
   anything else in the file (a function, a foreign class) makes loading fail instead of
   executing. The build is deterministic for a seed (same data, same model answers); the skops
   file's bytes are not (its array members are named after object ids).

Which features an attacker controls (``SPEC.mutable``): a fraudster holding stolen card details
chooses the **amount**, the **merchant category**, the **hour**, the **channel** and how fast
they spend (the two **velocity counters**). They do not control what the issuer derives from
sources outside the transaction request: **card present** (the terminal reports a chip or
stripe read; without a cloned card it is 0), the **distance from home** (terminal location or IP
geolocation against the cardholder's billing address), the **new-device** flag (the issuer's
device history for the card), the **country mismatch** (card issuing country against merchant
and IP country) and the card's **30-day average amount** (its history). Attacks perturb only
the mutable features, so an evasion found by ``assess`` is one a fraudster could really use.

``classes = ("legit", "fraud")``: ``scores[1]`` is the fraud probability.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.scenarios.base import BuiltScenario, InputSpec, Progress, TabularLoaded, quiet

NAME = "fraud-detection"
MODEL_NAME = "fraud-detection-hgb-v1"
CLASSES = ("legit", "fraud")
DEFAULT_TRANSACTIONS = 200_000
DEFAULT_HOLDOUT = 0.25
#: Share of transactions drawn from a fraud pattern, before label noise.
FRAUD_PRIOR = 0.010
MODEL_FILE = "model.skops"
META_FILE = "model.json"
DATA_FILE = "transactions.npz"
#: Batches up to this many rows are scored on one thread (see LoadedFraud.predict_proba).
SMALL_BATCH = 256
#: The only types outside skops' defaults (numpy, builtins, sklearn estimators) that a fraud
#: model file may contain. Listed by hand, never taken from the file being loaded.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)

MERCHANT_CATEGORIES: tuple[str, ...] = (
    "grocery",  # 0
    "restaurant",  # 1
    "fuel",  # 2
    "retail",  # 3
    "travel",  # 4
    "electronics",  # 5
    "digital_goods",  # 6 (gift cards, game credit, app stores)
    "jewelry",  # 7
    "gambling",  # 8
    "cash_withdrawal",  # 9
)
CHANNELS: tuple[str, ...] = ("pos", "ecom", "atm")
POS, ECOM, ATM = 0, 1, 2
_CAT = {name: i for i, name in enumerate(MERCHANT_CATEGORIES)}

# (name, lower, upper, integer, mutable): see the module docstring for the mutable choices.
FEATURES: tuple[tuple[str, float, float, bool, bool], ...] = (
    ("amount", 0.5, 25_000.0, False, True),
    ("merchant_category", 0, len(MERCHANT_CATEGORIES) - 1, True, True),
    ("hour", 0, 23, True, True),
    ("channel", 0, len(CHANNELS) - 1, True, True),
    ("card_present", 0, 1, True, False),
    ("txn_count_1h", 0, 60, True, True),
    ("txn_count_24h", 0, 300, True, True),
    ("distance_from_home_km", 0.0, 20_000.0, False, False),
    ("device_new", 0, 1, True, False),
    ("country_mismatch", 0, 1, True, False),
    ("card_avg_amount_30d", 2.0, 5_000.0, False, False),
)
FEATURE_NAMES = tuple(f[0] for f in FEATURES)
CATEGORICAL = tuple(FEATURE_NAMES.index(n) for n in ("merchant_category", "channel"))
SPEC = InputSpec(
    kind="tabular",
    names=FEATURE_NAMES,
    lower=tuple(float(f[1]) for f in FEATURES),
    upper=tuple(float(f[2]) for f in FEATURES),
    integer=tuple(f[3] for f in FEATURES),
    mutable=tuple(f[4] for f in FEATURES),
)
_LO = dict(zip(FEATURE_NAMES, SPEC.lower, strict=True))
_HI = dict(zip(FEATURE_NAMES, SPEC.upper, strict=True))

# --- the transaction generator -----------------------------------------------------------------

# Legitimate merchant mix per channel (probabilities over MERCHANT_CATEGORIES).
_LEGIT_CATEGORY = {
    POS: (0.30, 0.25, 0.15, 0.21, 0.02, 0.04, 0.0, 0.01, 0.02, 0.0),
    ECOM: (0.05, 0.08, 0.0, 0.35, 0.12, 0.12, 0.22, 0.02, 0.04, 0.0),
    ATM: (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
}
_CHANNEL_MIX = (0.68, 0.27, 0.05)
# Median amount (USD, for a card whose 30-day average is the population median) and log-sd.
_AMOUNT = {
    "grocery": (45.0, 0.7),
    "restaurant": (30.0, 0.6),
    "fuel": (50.0, 0.4),
    "retail": (60.0, 0.9),
    "travel": (350.0, 0.9),
    "electronics": (180.0, 1.0),
    "digital_goods": (15.0, 0.9),
    "jewelry": (250.0, 1.0),
    "gambling": (40.0, 1.0),
    "cash_withdrawal": (100.0, 0.6),
}
_AMOUNT_MU = np.log([_AMOUNT[c][0] for c in MERCHANT_CATEGORIES])
_AMOUNT_SD = np.array([_AMOUNT[c][1] for c in MERCHANT_CATEGORIES])
_CARD_AVG_MEDIAN = 55.0
# Daily rhythm of legitimate card use (relative weight per hour 0..23).
_HOURLY_POS = np.array(
    [
        1.2,
        0.7,
        0.5,
        0.4,
        0.4,
        0.6,
        1.5,
        3.0,
        4.5,
        5.0,
        5.5,
        6.5,
        7.5,
        6.5,
        5.8,
        5.6,
        6.0,
        6.8,
        7.2,
        6.6,
        5.5,
        4.5,
        3.2,
        2.0,
    ]
)
_HOURLY_POS = _HOURLY_POS / _HOURLY_POS.sum()
_HOURLY_ECOM = _HOURLY_POS + 0.02  # online shopping is flatter
_HOURLY_ECOM = _HOURLY_ECOM / _HOURLY_ECOM.sum()
_NIGHT = np.array([1.0 if h <= 5 else 0.0 for h in range(24)]) / 6.0
_CAMOUFLAGE = 0.25
_UNREPORTED_FRAUD = 0.04
_FRIENDLY_FRAUD = 0.0005
_BEHAVIOUR = (
    "amount",
    "hour",
    "txn_count_1h",
    "txn_count_24h",
    "distance_from_home_km",
    "device_new",
    "country_mismatch",
)


def _pick(rng: np.random.Generator, n: int, probs: Any) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    return rng.choice(len(p), size=n, p=p / p.sum())


def _card_avg(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.exp(rng.normal(np.log(_CARD_AVG_MEDIAN), 0.5, n))


def _amount(category: np.ndarray, scale: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    mu, sd = _AMOUNT_MU[category], _AMOUNT_SD[category]
    amount = np.exp(rng.normal(mu, sd)) * scale
    cash = category == _CAT["cash_withdrawal"]
    amount[cash] = np.maximum(20.0, np.round(amount[cash] / 20.0) * 20.0)  # notes
    return amount


def _distance(n: int, rng: np.random.Generator) -> np.ndarray:
    """Legitimate distance from home (km): mostly local, some domestic and foreign travel."""
    u = rng.random(n)
    local = np.exp(rng.normal(np.log(6.0), 1.0, n))
    domestic = np.exp(rng.normal(np.log(300.0), 0.8, n))
    abroad = np.exp(rng.normal(np.log(2500.0), 0.8, n))
    return np.where(u < 0.93, local, np.where(u < 0.99, domestic, abroad))


def _far(n: int, rng: np.random.Generator, median: float, sd: float) -> np.ndarray:
    return np.exp(rng.normal(np.log(median), sd, n))


def _legit(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    channel = _pick(rng, n, _CHANNEL_MIX)
    category = np.empty(n, dtype=np.int64)
    for ch, probs in _LEGIT_CATEGORY.items():
        idx = np.flatnonzero(channel == ch)
        category[idx] = _pick(rng, len(idx), probs)
    card_avg = _card_avg(n, rng)
    amount = _amount(category, card_avg / _CARD_AVG_MEDIAN, rng)
    hour = np.where(channel == ECOM, _pick(rng, n, _HOURLY_ECOM), _pick(rng, n, _HOURLY_POS))
    card_present = np.where(channel == ECOM, 0, np.where(channel == ATM, 1, rng.random(n) < 0.97))
    count_1h = rng.poisson(0.25, n)
    activity = rng.gamma(2.0, 1.2, n)  # cards differ in how much they are used
    count_24h = count_1h + rng.poisson(activity)
    distance = _distance(n, rng)
    abroad = distance > 1_000.0
    cross_border_online = (channel == ECOM) & (rng.random(n) < 0.08)
    mismatch = abroad & (rng.random(n) < 0.85) | cross_border_online
    device_new = np.where(
        channel == ECOM, rng.random(n) < 0.05, (channel == POS) & (rng.random(n) < 0.01)
    )
    return {
        "amount": amount,
        "merchant_category": category,
        "hour": hour,
        "channel": channel,
        "card_present": card_present,
        "txn_count_1h": count_1h,
        "txn_count_24h": count_24h,
        "distance_from_home_km": distance,
        "device_new": device_new,
        "country_mismatch": mismatch,
        "card_avg_amount_30d": card_avg,
    }


def _fraud(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Fraud rows from four patterns (shares 35/25/20/20 %), before camouflage."""
    f = _legit(n, rng)  # the card's own attributes (average spend) stay realistic
    pattern = _pick(rng, n, (0.35, 0.25, 0.20, 0.20))
    out = {k: np.asarray(v, dtype=np.float64).copy() for k, v in f.items()}
    night = _pick(rng, n, _NIGHT)

    # 0: card-not-present, high value, at night, often far away on a new device.
    i = np.flatnonzero(pattern == 0)
    cat = np.array([_CAT[c] for c in ("electronics", "jewelry", "travel", "digital_goods")])
    cat = np.append(cat, _CAT["retail"])
    category = cat[_pick(rng, len(i), (0.35, 0.2, 0.15, 0.2, 0.1))]
    out["channel"][i], out["card_present"][i], out["merchant_category"][i] = ECOM, 0, category
    out["amount"][i] = np.exp(rng.normal(_AMOUNT_MU[category] + np.log(3.0), 0.8))
    out["hour"][i] = np.where(rng.random(len(i)) < 0.6, night[i], out["hour"][i])
    out["device_new"][i] = rng.random(len(i)) < 0.65
    far = rng.random(len(i)) < 0.5
    out["distance_from_home_km"][i] = np.where(
        far, _far(len(i), rng, 1_500.0, 1.2), out["distance_from_home_km"][i]
    )
    out["country_mismatch"][i] = rng.random(len(i)) < 0.45
    out["txn_count_1h"][i] = rng.poisson(1.0, len(i))
    out["txn_count_24h"][i] = out["txn_count_1h"][i] + rng.poisson(3.0, len(i))

    # 1: card testing: a burst of tiny online charges at digital goods, gambling or retail.
    i = np.flatnonzero(pattern == 1)
    cat = np.array([_CAT["digital_goods"], _CAT["gambling"], _CAT["retail"]])
    out["merchant_category"][i] = cat[_pick(rng, len(i), (0.6, 0.2, 0.2))]
    out["channel"][i], out["card_present"][i] = ECOM, 0
    tiny = rng.random(len(i)) < 0.6
    out["amount"][i] = np.where(tiny, rng.uniform(0.5, 5.0, len(i)), out["amount"][i])
    out["hour"][i] = rng.integers(0, 24, len(i))
    out["txn_count_1h"][i] = 3 + rng.poisson(6.0, len(i))
    out["txn_count_24h"][i] = out["txn_count_1h"][i] + rng.poisson(8.0, len(i))
    out["device_new"][i] = rng.random(len(i)) < 0.5
    far = rng.random(len(i)) < 0.5
    out["distance_from_home_km"][i] = np.where(
        far, _far(len(i), rng, 1_500.0, 1.2), out["distance_from_home_km"][i]
    )
    out["country_mismatch"][i] = rng.random(len(i)) < 0.3

    # 2: cloned card at a terminal or ATM, far from home, high value, often at night.
    i = np.flatnonzero(pattern == 2)
    atm = rng.random(len(i)) < 0.5
    cat = np.array([_CAT["electronics"], _CAT["jewelry"], _CAT["retail"]])
    pos_cat = cat[_pick(rng, len(i), (0.4, 0.3, 0.3))]
    out["channel"][i] = np.where(atm, ATM, POS)
    out["card_present"][i] = 1
    out["merchant_category"][i] = np.where(atm, _CAT["cash_withdrawal"], pos_cat)
    cash = np.maximum(20.0, np.round(np.exp(rng.normal(np.log(400.0), 0.5, len(i))) / 20) * 20)
    goods = np.exp(rng.normal(_AMOUNT_MU[pos_cat] + np.log(2.5), 0.8))
    out["amount"][i] = np.where(atm, cash, goods)
    out["hour"][i] = np.where(rng.random(len(i)) < 0.4, night[i], out["hour"][i])
    out["distance_from_home_km"][i] = _far(len(i), rng, 800.0, 1.3)
    out["country_mismatch"][i] = rng.random(len(i)) < 0.5
    out["txn_count_1h"][i] = rng.poisson(1.5, len(i))
    out["txn_count_24h"][i] = out["txn_count_1h"][i] + rng.poisson(4.0, len(i))
    out["device_new"][i] = 0

    # 3: account takeover: a new device spends several times the card's usual amount online.
    i = np.flatnonzero(pattern == 3)
    cat = np.array([_CAT[c] for c in ("retail", "electronics", "travel", "digital_goods")])
    out["merchant_category"][i] = cat[_pick(rng, len(i), (0.35, 0.3, 0.2, 0.15))]
    out["channel"][i], out["card_present"][i] = ECOM, 0
    out["amount"][i] = out["card_avg_amount_30d"][i] * np.exp(rng.normal(np.log(4.0), 0.8, len(i)))
    out["device_new"][i] = rng.random(len(i)) < 0.9
    far = rng.random(len(i)) < 0.5
    out["distance_from_home_km"][i] = np.where(
        far, _far(len(i), rng, 1_000.0, 1.3), out["distance_from_home_km"][i]
    )
    out["country_mismatch"][i] = rng.random(len(i)) < 0.2
    out["txn_count_1h"][i] = rng.poisson(0.6, len(i))
    out["txn_count_24h"][i] = out["txn_count_1h"][i] + rng.poisson(3.0, len(i))

    # Camouflage: each behavioural feature falls back to a legitimate draw with some probability.
    legit = _legit(n, rng)
    for k in _BEHAVIOUR:
        mask = rng.random(n) < _CAMOUFLAGE
        out[k][mask] = legit[k][mask]
    out["txn_count_24h"] = np.maximum(out["txn_count_24h"], out["txn_count_1h"])
    return out


def _matrix(cols: dict[str, np.ndarray]) -> np.ndarray:
    """Columns -> (n, 11) float64 in FEATURE_NAMES order, rounded and clipped to the bounds."""
    cols = {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}
    cols["amount"] = np.round(cols["amount"], 2)
    cols["distance_from_home_km"] = np.round(cols["distance_from_home_km"], 1)
    cols["card_avg_amount_30d"] = np.round(cols["card_avg_amount_30d"], 2)
    x = np.column_stack([np.clip(cols[n], _LO[n], _HI[n]) for n in FEATURE_NAMES])
    return x


def sample_transactions(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` fresh legitimate transactions (columns in :data:`FEATURE_NAMES` order)."""
    return _matrix(_legit(n, rng))


def generate_transactions(
    n: int, rng: np.random.Generator, fraud_prior: float = FRAUD_PRIOR
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` shuffled transactions: features ``x`` (n, 11), noisy chargeback labels ``y``
    (1 = fraud) and the true pattern label ``is_fraud`` (before label noise)."""
    n_fraud = int(rng.binomial(n, fraud_prior))
    x = np.vstack([_matrix(_legit(n - n_fraud, rng)), _matrix(_fraud(n_fraud, rng))])
    is_fraud = np.r_[np.zeros(n - n_fraud, np.int64), np.ones(n_fraud, np.int64)]
    noise = rng.random(n)
    y = np.where(is_fraud == 1, noise >= _UNREPORTED_FRAUD, noise < _FRIENDLY_FRAUD)
    order = rng.permutation(n)
    return x[order], y.astype(np.int64)[order], is_fraud[order]


# --- the model artifact (skops, explicit trusted types) -----------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def new_model(seed: int = 0) -> Any:
    """The untrained classifier: small tree budget for single-row latency, early stopping."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        learning_rate=0.1,
        max_iter=120,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        l2_regularization=1.0,
        # Merchant category and channel stay ordinal codes (trees isolate the few codes in a
        # couple of splits): native categorical support would add a ColumnTransformer to every
        # prediction (latency) and functools.partial to the skops file's trusted types.
        categorical_features=None,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=15,
        scoring="loss",
        random_state=seed,
    )


def save_model(directory: Path, model: Any, extra: dict[str, Any]) -> None:
    """``model.skops`` (skops format: zip of JSON and arrays) and ``model.json`` metadata."""
    import sklearn
    import skops
    import skops.io as sio

    path = directory / MODEL_FILE
    sio.dump(model, path)
    meta = {
        "format": "skops",
        "model": MODEL_NAME,
        "estimator": type(model).__name__,
        "feature_names": list(FEATURE_NAMES),
        "coded_features": {
            "merchant_category": list(MERCHANT_CATEGORIES),
            "channel": list(CHANNELS),
        },
        "classes": list(CLASSES),
        "positive_class": CLASSES[1],
        "trusted_types": list(TRUSTED_TYPES),
        "sha256": _sha256(path),
        "sklearn_version": sklearn.__version__,
        "skops_version": skops.__version__,
        "params": {
            k: v
            for k, v in model.get_params().items()
            if isinstance(v, int | float | str | bool) or v is None
        },
        "n_trees": int(model.n_iter_),
        **extra,
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def load_model(directory: Path) -> tuple[Any, dict[str, Any]]:
    """The classifier and its metadata. The file must match the digest in the metadata, and it
    is loaded trusting only skops' defaults plus :data:`TRUSTED_TYPES` (skops raises
    ``UntrustedTypesFoundException`` on anything else; nothing in the file is executed)."""
    import skops.io as sio

    directory = Path(directory)
    meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    path = directory / MODEL_FILE
    if _sha256(path) != meta["sha256"]:
        raise ValueError(f"{path}: digest does not match {META_FILE} (modified or corrupt)")
    if meta["feature_names"] != list(FEATURE_NAMES):
        raise ValueError(f"{directory / META_FILE}: unexpected feature names")
    model = sio.load(path, trusted=list(TRUSTED_TYPES))
    return model, meta


# --- the scenario ------------------------------------------------------------------------------


class LoadedFraud(TabularLoaded):
    """The built fraud scenario: the classifier, the transactions and their split."""

    name = NAME
    model_name = MODEL_NAME
    spec = SPEC
    classes = CLASSES

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.model, self.meta = load_model(self.directory)
        self._load_split(self.directory / DATA_FILE)
        from threadpoolctl import ThreadpoolController

        self._threads = ThreadpoolController()  # built once: it inspects the loaded libraries

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = self._batch(x)
        # Categorical codes outside the known range would raise inside sklearn: clip them.
        x = x.copy()
        for j in CATEGORICAL:
            x[:, j] = np.clip(np.round(x[:, j]), SPEC.lower[j], SPEC.upper[j])
        if len(x) > SMALL_BATCH:
            return np.asarray(self.model.predict_proba(x), dtype=np.float64)
        # Low-latency path: one OpenMP thread. Spreading a few rows over threads costs more than
        # it saves, and on a busy machine a thread that waits for a core stalls the request
        # (measured on 2 shared cores: p99 of one row 0.9 s with 2 threads, 1 ms with 1).
        with self._threads.limit(limits=1, user_api="openmp"):
            return np.asarray(self.model.predict_proba(x), dtype=np.float64)

    def sample_benign(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return sample_transactions(n, rng)


def _recall_at_fpr(y: np.ndarray, p: np.ndarray, fpr: float) -> float:
    from sklearn.metrics import roc_curve

    f, t, _ = roc_curve(y, p)
    return float(np.max(t[f <= fpr])) if np.any(f <= fpr) else 0.0


class FraudDetection:
    """Card fraud detection (see the module docstring)."""

    name = NAME
    artifact = MODEL_FILE  # the published artifact scan checks (skops: data only)
    description = (
        "Synthetic card authorisations (~1 % fraud from four patterns, noisy chargeback labels), "
        "HistGradientBoostingClassifier saved with skops (explicit trusted types); REST API."
    )

    def build(
        self,
        directory: Path,
        *,
        seed: int = 0,
        progress: Progress = quiet,
        n_transactions: int = DEFAULT_TRANSACTIONS,
        holdout_fraction: float = DEFAULT_HOLDOUT,
        **options: Any,
    ) -> BuiltScenario:
        """Build into ``directory``. Options: ``n_transactions`` (default 200,000) and
        ``holdout_fraction`` (default 0.25)."""
        if options:
            raise TypeError(f"unknown build options for {NAME}: {', '.join(sorted(options))}")
        if n_transactions < 5_000:
            raise ValueError("n_transactions must be at least 5,000")
        if not 0.05 <= holdout_fraction <= 0.5:
            raise ValueError("holdout_fraction must be between 0.05 and 0.5")
        from sklearn.metrics import average_precision_score, roc_auc_score

        start = time.perf_counter()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        progress(f"generating {n_transactions:,} synthetic card transactions (seed {seed})")
        x, y, is_fraud = generate_transactions(n_transactions, rng)
        # Stratified split: the holdout keeps the fraud rate.
        is_train = np.ones(n_transactions, dtype=bool)
        for cls in (0, 1):
            idx = np.flatnonzero(y == cls)
            is_train[rng.permutation(idx)[: round(len(idx) * holdout_fraction)]] = False
        np.savez(directory / DATA_FILE, x=x, y=y, is_train=is_train, is_fraud=is_fraud)

        progress("training HistGradientBoostingClassifier")
        x_tr, y_tr = x[is_train], y[is_train]
        x_ho, y_ho = x[~is_train], y[~is_train]
        # One OpenMP thread: about 2 s either way, but on a shared 2-core machine a second
        # thread that waits for a busy core stalls every boosting round (measured: 8-80 s).
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="openmp"):
            model = new_model(seed).fit(x_tr, y_tr)
            p_ho = model.predict_proba(x_ho)[:, 1]
            p_tr = model.predict_proba(x_tr)[:, 1]
        metrics = {
            "pr_auc": float(average_precision_score(y_ho, p_ho)),
            "roc_auc": float(roc_auc_score(y_ho, p_ho)),
            "base_rate": float(y_ho.mean()),
            "recall_at_1pct_fpr": _recall_at_fpr(y_ho, p_ho, 0.01),
            "train_pr_auc": float(average_precision_score(y_tr, p_tr)),
            "train_roc_auc": float(roc_auc_score(y_tr, p_tr)),
            "fraud_rate": float(y.mean()),
            "n_train": float(len(y_tr)),
            "n_holdout": float(len(y_ho)),
            "n_trees": float(model.n_iter_),
        }
        metrics = {k: round(v, 6) for k, v in metrics.items()}

        progress("saving the model with skops (no pickle)")
        save_model(directory, model, {"seed": seed, "metrics": metrics})
        loaded, _meta = load_model(directory)
        with threadpool_limits(limits=1, user_api="openmp"):
            reloaded = loaded.predict_proba(x_ho)[:, 1]
        if not np.array_equal(reloaded, p_ho):
            raise RuntimeError("saved model does not reproduce the trained probabilities")
        seconds = time.perf_counter() - start
        progress(
            f"fraud model: holdout PR-AUC {metrics['pr_auc']:.3f} (base rate "
            f"{metrics['base_rate']:.4f}), ROC AUC {metrics['roc_auc']:.3f} ({seconds:.1f}s)"
        )
        return BuiltScenario(
            name=NAME,
            directory=directory,
            seed=seed,
            metrics=metrics,
            files={"model": MODEL_FILE, "model_meta": META_FILE, "data": DATA_FILE},
            seconds=round(seconds, 3),
        )

    def load(self, directory: Path) -> LoadedFraud:
        return LoadedFraud(directory)


__all__ = [
    "CHANNELS",
    "CLASSES",
    "FEATURE_NAMES",
    "MERCHANT_CATEGORIES",
    "SPEC",
    "TRUSTED_TYPES",
    "FraudDetection",
    "LoadedFraud",
    "generate_transactions",
    "load_model",
    "new_model",
    "sample_transactions",
    "save_model",
]
