"""Loan approval: the seed brief's first scenario, built for real.

    "You have a pipeline that pulls applicant data from an internal SQL database, preprocesses
     it, trains a logistic regression model, and deploys it as a REST API for a loan approval
     dashboard."

``build`` does exactly that, on this machine:

1. **Applicants.** A seeded generator draws synthetic applicants with realistic marginals and
   correlations (see :func:`generate_applicants`): log-normal income that rises with age, tenure
   and district; credit history bounded by and correlated with age; Poisson delinquencies whose
   rate grows with debt-to-income; a loan amount scaled by income. Each applicant also has direct
   identifiers (a synthetic name and a national-insurance-like id with the ``QQ`` prefix, which is
   never issued, so every id is visibly fake), a birth date and a fictional postcode
   (``QX<district> <sector><unit>``; no real UK postcode area starts with Q). The historical
   decision comes from a plausible approval rule, a logistic function of standardised features
   with Bernoulli noise (:func:`approval_logit`).
2. **Database.** The applicants go into a real SQL database through SQLAlchemy Core: a SQLite file
   in the build folder by default, PostgreSQL when ``db_url="postgresql+psycopg://…"`` is given.
   Table ``applications`` is the system of record (identifiers included); table
   ``training_split`` records which applications were used for training and which were held out,
   so membership inference can be scored honestly against the database.
3. **Preprocessing** reads the rows back with SQL (``SELECT … FROM applications JOIN
   training_split``), drops the direct identifiers, derives ``age`` from the birth date and the
   application date, and ``postcode_district`` from the postcode, and writes the feature table
   (``features.npz``). As in ``examples/loan-approval/system.yaml``, the two quasi-identifiers
   postcode district and age are *kept as model features* (weakness 7 of that file). The district
   is used as its numeric code: districts are numbered inner city to outskirts, and the regional
   income level falls with the number, so the code carries signal a linear model can use.
4. **Training**: scikit-learn ``StandardScaler`` + ``LogisticRegression`` on the training split;
   ROC AUC and accuracy measured on the holdout split.
5. **Artifact**: not a pickle. ``model.npz`` holds the weights as plain float64 arrays (loadable
   with ``allow_pickle=False``) and ``model.json`` the metadata (feature names, classes, sklearn
   version, array digests). :class:`LoadedLoan` predicts with the logistic function computed from
   those arrays and can rebuild an equivalent sklearn ``Pipeline`` (:meth:`LoadedLoan.pipeline`).
   The build also publishes ``model.joblib``, the artifact ``examples/loan-approval/system.yaml``
   declares (``serialization: joblib``), so that ``scan`` checks the format the system really
   ships; nothing in mlhunt loads it.

The label is the historical approval decision: ``classes = ("rejected", "approved")``, so
``scores[1]`` is the probability of approval.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.scenarios.base import BuiltScenario, InputSpec, Progress, TabularLoaded, quiet

NAME = "loan-approval"
MODEL_NAME = "loan-approval-logreg-v1"
CLASSES = ("rejected", "approved")
DEFAULT_APPLICANTS = 10_000
DEFAULT_HOLDOUT = 0.25
N_DISTRICTS = 40
TABLE = "applications"
SPLIT_TABLE = "training_split"
DB_FILE = "applicants.sqlite"
MODEL_FILE = "model.npz"
#: The artifact the system description declares (``serialization: joblib``): the pipeline as
#: the training job publishes it, for ``scan`` (mlhunt never loads it; the API reads the arrays).
ARTIFACT_FILE = "model.joblib"
META_FILE = "model.json"
FEATURES_FILE = "features.npz"
DATASET_FILE = "dataset.json"

# (name, lower, upper, integer, mutable). Bounds are the generator's clipping range, so every
# generated applicant is inside them and they are realistic limits for an attacker's search.
# Age and postcode district are immutable: an applicant cannot change them on an application
# (and they come from documents); the financial figures are self-declared and can be lied about.
FEATURES: tuple[tuple[str, float, float, bool, bool], ...] = (
    ("age", 18, 80, True, False),
    ("postcode_district", 1, N_DISTRICTS, True, False),
    ("annual_income", 8_000, 400_000, False, True),
    ("debt_to_income", 0.0, 1.2, False, True),
    ("credit_history_years", 0, 62, True, True),
    ("delinquencies", 0, 15, True, True),
    ("loan_amount", 1_000, 150_000, False, True),
    ("employment_years", 0, 50, True, True),
    ("open_accounts", 0, 30, True, True),
)
FEATURE_NAMES = tuple(f[0] for f in FEATURES)
SPEC = InputSpec(
    kind="tabular",
    names=FEATURE_NAMES,
    lower=tuple(float(f[1]) for f in FEATURES),
    upper=tuple(float(f[2]) for f in FEATURES),
    integer=tuple(f[3] for f in FEATURES),
    mutable=tuple(f[4] for f in FEATURES),
)

# --- the applicant generator ------------------------------------------------------------------

# Regional economic index per district (1 = inner city, N = outskirts): drives income, and the
# district's own small effect on approval (local arrears history).
_DISTRICT_INDEX = np.linspace(0.22, -0.22, N_DISTRICTS)
# Population share per district: a few large districts, a long tail (fixed, not random).
_DISTRICT_WEIGHTS = np.exp(-np.arange(N_DISTRICTS) / 14.0) + 0.08
_DISTRICT_WEIGHTS /= _DISTRICT_WEIGHTS.sum()

_FIRST = (
    "Alex",
    "Sam",
    "Jordan",
    "Taylor",
    "Morgan",
    "Casey",
    "Riley",
    "Jamie",
    "Robin",
    "Avery",
    "Quinn",
    "Drew",
    "Charlie",
    "Rowan",
    "Emery",
    "Harper",
    "Kai",
    "Logan",
    "Noa",
    "Reese",
)
_LAST = (
    "Ashdown",
    "Brightwell",
    "Calloway",
    "Dunmore",
    "Elmsworth",
    "Fairlie",
    "Greystone",
    "Hollins",
    "Ivesby",
    "Kettering",
    "Larkspur",
    "Merriman",
    "Northcott",
    "Oakhurst",
    "Pennywhistle",
    "Quarrington",
    "Rookwood",
    "Stanway",
    "Thistlewood",
    "Underhill",
)
_LETTERS = np.array(list("ABDEFGHJLNPQRSTUWXYZ"))  # the letters UK postcode units use
_START = date(2022, 1, 1)


@dataclass
class Applicants:
    """Generated applicants: model features (float64 columns) plus the database-only fields."""

    features: dict[str, np.ndarray]
    applied_on: list[date]
    birth_date: list[date]
    postcode: list[str]
    name: list[str]
    national_id: list[str]

    def matrix(self) -> np.ndarray:
        return np.column_stack([self.features[n] for n in FEATURE_NAMES]).astype(np.float64)

    def __len__(self) -> int:
        return len(self.applied_on)


def _features(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The model-relevant attributes, vectorised. Correlations: income with age, tenure and
    district; credit history with age; delinquencies with debt-to-income; loan with income."""
    lo = {f[0]: f[1] for f in FEATURES}
    hi = {f[0]: f[2] for f in FEATURES}
    age = np.clip(np.round(18 + rng.gamma(4.5, 5.3, n)), lo["age"], hi["age"])
    district = rng.choice(N_DISTRICTS, size=n, p=_DISTRICT_WEIGHTS) + 1
    adult_years = age - 18
    employment = np.floor(adult_years * rng.beta(2.0, 2.5, n))
    employment = np.clip(employment, lo["employment_years"], hi["employment_years"])
    # Earnings rise to the mid-forties then flatten; tenure and region shift them.
    career = np.minimum(adult_years, 27.0)
    log_income = (
        10.05
        + 0.032 * career
        - 0.0004 * career**2
        + 0.012 * employment
        + _DISTRICT_INDEX[district - 1]
        + rng.normal(0.0, 0.45, n)
    )
    income = np.round(np.exp(log_income), -2)
    income = np.clip(income, lo["annual_income"], hi["annual_income"])
    history = np.floor(adult_years * rng.beta(4.0, 1.6, n) + rng.uniform(0, 1.5, n))
    history = np.minimum(history, age - 16)
    history = np.clip(history, lo["credit_history_years"], hi["credit_history_years"])
    accounts = rng.poisson(1.2 + 0.11 * history + 0.6 * (log_income - 10.3).clip(0))
    accounts = np.clip(accounts, lo["open_accounts"], hi["open_accounts"]).astype(np.float64)
    dti = rng.beta(2.2, 6.0, n) * 1.05 + 0.012 * accounts - 0.04 * (log_income - 10.5)
    dti = np.round(np.clip(dti, lo["debt_to_income"], hi["debt_to_income"]), 3)
    delinquencies = rng.poisson(0.12 * np.exp(3.2 * dti) * (1.0 + 0.02 * history))
    delinquencies = np.clip(delinquencies, lo["delinquencies"], hi["delinquencies"])
    loan = np.round(income * np.exp(rng.normal(np.log(0.28), 0.55, n)), -2)
    loan = np.clip(loan, lo["loan_amount"], hi["loan_amount"])
    cols = {
        "age": age,
        "postcode_district": district,
        "annual_income": income,
        "debt_to_income": dti,
        "credit_history_years": history,
        "delinquencies": delinquencies,
        "loan_amount": loan,
        "employment_years": employment,
        "open_accounts": accounts,
    }
    return {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}


def sample_features(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` fresh applicants' feature vectors (columns in :data:`FEATURE_NAMES` order)."""
    f = _features(n, rng)
    return np.column_stack([f[k] for k in FEATURE_NAMES])


def generate_applicants(n: int, rng: np.random.Generator) -> Applicants:
    """``n`` applicants with features, dates, postcode and (fake) direct identifiers."""
    feats = _features(n, rng)
    day = rng.integers(0, 36, n)  # application month index over three years
    dom = rng.integers(1, 29, n)  # day of month 1..28: every birthday exists in every year
    back = rng.integers(0, 364, n)  # days before the last birthday
    sector = rng.integers(1, 10, n)
    unit = rng.integers(0, len(_LETTERS), (n, 2))
    first = rng.integers(0, len(_FIRST), n)
    last = rng.integers(0, len(_LAST), n)
    serial = rng.permutation(1_000_000)[:n]
    suffix = rng.integers(0, 4, n)
    applied, born, postcode, names, ids = [], [], [], [], []
    for i in range(n):
        y, m = divmod(int(day[i]), 12)
        a = date(_START.year + y, m + 1, int(dom[i]))
        age = int(feats["age"][i])
        # The last birthday is ``back`` days before the application (0..363), so the age on the
        # application date is exactly ``age``.
        last_birthday = a - timedelta(days=int(back[i]))
        if (last_birthday.month, last_birthday.day) == (2, 29):  # not a birthday every year
            last_birthday -= timedelta(days=1)
        b = last_birthday.replace(year=last_birthday.year - age)
        applied.append(a)
        born.append(b)
        d = int(feats["postcode_district"][i])
        postcode.append(f"QX{d} {sector[i]}{_LETTERS[unit[i, 0]]}{_LETTERS[unit[i, 1]]}")
        names.append(f"{_FIRST[first[i]]} {_LAST[last[i]]}")
        ids.append(f"QQ{serial[i]:06d}{'ABCD'[suffix[i]]}")
    return Applicants(feats, applied, born, postcode, names, ids)


def age_on(birth: date, on: date) -> int:
    """Whole years between ``birth`` and ``on`` (what the preprocessing job derives)."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def district_of(postcode: str) -> int:
    """``"QX17 4AB"`` -> 17."""
    return int(postcode.split()[0][2:])


# Standardisation constants of the approval rule: fixed population figures (not sample
# statistics), so the rule is the same for every sample size.
def approval_logit(f: dict[str, np.ndarray]) -> np.ndarray:
    """The lender's historical approval rule (before noise): a logistic score over standardised
    affordability and credit-quality terms. Loan-to-income enters non-linearly (a log ratio), so
    a linear model on the raw features fits it well but not perfectly."""
    s_income = (np.log(f["annual_income"]) - 10.55) / 0.5
    s_dti = (f["debt_to_income"] - 0.30) / 0.14
    s_delinq = (np.log1p(f["delinquencies"]) - 0.35) / 0.45
    s_history = (f["credit_history_years"] - 17.0) / 10.0
    s_lti = (np.log(f["loan_amount"] / f["annual_income"]) - np.log(0.28)) / 0.55
    s_employ = (np.minimum(f["employment_years"], 15.0) - 6.0) / 5.0
    s_accounts = (f["open_accounts"] - 4.0) / 2.5
    s_age = (f["age"] - 42.0) / 13.0
    region = _DISTRICT_INDEX[f["postcode_district"].astype(int) - 1] / 0.13
    return (
        0.45
        + 0.80 * s_income
        - 0.90 * s_dti
        - 0.85 * s_delinq
        + 0.45 * s_history
        - 0.75 * s_lti
        + 0.30 * s_employ
        - 0.15 * s_accounts
        + 0.10 * s_age
        + 0.20 * region
    )


# --- the database --------------------------------------------------------------------------


def _tables(metadata: Any) -> tuple[Any, Any]:
    from sqlalchemy import Column, Date, Float, ForeignKey, Integer, String, Table

    applications = Table(
        TABLE,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("applicant_name", String(80), nullable=False),
        Column("national_id", String(16), nullable=False, unique=True),
        Column("birth_date", Date, nullable=False),
        Column("postcode", String(12), nullable=False),
        Column("applied_on", Date, nullable=False),
        Column("annual_income", Float, nullable=False),
        Column("debt_to_income", Float, nullable=False),
        Column("credit_history_years", Integer, nullable=False),
        Column("delinquencies", Integer, nullable=False),
        Column("loan_amount", Float, nullable=False),
        Column("employment_years", Integer, nullable=False),
        Column("open_accounts", Integer, nullable=False),
        Column("approved", Integer, nullable=False),  # the historical decision (label)
    )
    split = Table(
        SPLIT_TABLE,
        metadata,
        Column("application_id", Integer, ForeignKey(f"{TABLE}.id"), primary_key=True),
        Column("split", String(8), nullable=False),  # "train" | "holdout"
    )
    return applications, split


def redact_url(url: str) -> str:
    """A database URL without its password (safe to write to metadata and logs)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _write_database(
    engine: Any, people: Applicants, approved: np.ndarray, is_train: np.ndarray
) -> None:
    from sqlalchemy import MetaData

    metadata = MetaData()
    applications, split = _tables(metadata)
    f = people.features
    rows = [
        {
            "id": i + 1,
            "applicant_name": people.name[i],
            "national_id": people.national_id[i],
            "birth_date": people.birth_date[i],
            "postcode": people.postcode[i],
            "applied_on": people.applied_on[i],
            "annual_income": float(f["annual_income"][i]),
            "debt_to_income": float(f["debt_to_income"][i]),
            "credit_history_years": int(f["credit_history_years"][i]),
            "delinquencies": int(f["delinquencies"][i]),
            "loan_amount": float(f["loan_amount"][i]),
            "employment_years": int(f["employment_years"][i]),
            "open_accounts": int(f["open_accounts"][i]),
            "approved": int(approved[i]),
        }
        for i in range(len(people))
    ]
    splits = [
        {"application_id": i + 1, "split": "train" if is_train[i] else "holdout"}
        for i in range(len(people))
    ]
    # A rebuild replaces this scenario's two tables (and nothing else) in the target database.
    metadata.drop_all(engine)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(applications.insert(), rows)
        conn.execute(split.insert(), splits)


@dataclass
class FeatureTable:
    """What the preprocessing job produces from the database."""

    ids: np.ndarray  # application ids, ascending
    x: np.ndarray  # (n, len(FEATURE_NAMES)) float64
    y: np.ndarray  # (n,) int64, 1 = approved
    is_train: np.ndarray  # (n,) bool
    digest: str  # sha256 of every column of every row read, in id order


def preprocess(engine: Any) -> FeatureTable:
    """The nightly preprocessing job: SELECT the applications with their split, drop the direct
    identifiers, derive age and postcode district, and return the feature table."""
    from sqlalchemy import MetaData, select

    applications, split = _tables(MetaData())
    query = (
        select(applications, split.c.split)
        .join(split, split.c.application_id == applications.c.id)
        .order_by(applications.c.id)
    )
    digest = hashlib.sha256()
    ids, xs, ys, train = [], [], [], []
    with engine.connect() as conn:
        for row in conn.execute(query).mappings():
            digest.update(repr(tuple(row.values())).encode())
            derived = {
                "age": age_on(row["birth_date"], row["applied_on"]),
                "postcode_district": district_of(row["postcode"]),
            }
            xs.append([derived.get(n, row.get(n)) for n in FEATURE_NAMES])
            ids.append(row["id"])
            ys.append(row["approved"])
            train.append(row["split"] == "train")
    return FeatureTable(
        ids=np.asarray(ids, dtype=np.int64),
        x=np.asarray(xs, dtype=np.float64).reshape(-1, len(FEATURE_NAMES)),
        y=np.asarray(ys, dtype=np.int64),
        is_train=np.asarray(train, dtype=bool),
        digest=digest.hexdigest(),
    )


def create_db_engine(db_url: str) -> Any:
    from sqlalchemy import create_engine

    return create_engine(db_url, future=True)


# --- the model artifact (weights as arrays + JSON metadata, never a pickle) ----------------


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def save_model(directory: Path, pipeline: Any, extra: dict[str, Any]) -> None:
    import sklearn

    scaler, clf = pipeline.named_steps["scale"], pipeline.named_steps["logreg"]
    arrays = {
        "scaler_mean": np.asarray(scaler.mean_, dtype=np.float64),
        "scaler_scale": np.asarray(scaler.scale_, dtype=np.float64),
        "scaler_var": np.asarray(scaler.var_, dtype=np.float64),
        "coef": np.asarray(clf.coef_, dtype=np.float64),
        "intercept": np.asarray(clf.intercept_, dtype=np.float64),
    }
    np.savez(directory / MODEL_FILE, **arrays)
    meta = {
        "format": "mlhunt-logreg-arrays/1",
        "model": MODEL_NAME,
        "pipeline": ["StandardScaler", "LogisticRegression"],
        "feature_names": list(FEATURE_NAMES),
        "classes": list(CLASSES),
        "positive_class": CLASSES[1],
        "sklearn_version": sklearn.__version__,
        "logreg_params": {k: clf.get_params()[k] for k in ("C", "penalty", "solver", "max_iter")},
        "n_samples_seen": int(scaler.n_samples_seen_),
        "arrays": {k: {"shape": list(v.shape), "sha256": _sha(v)} for k, v in arrays.items()},
        **extra,
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def load_model(directory: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays and metadata, checked against the digests in the metadata."""
    meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    with np.load(directory / MODEL_FILE, allow_pickle=False) as npz:
        arrays = {k: np.array(npz[k], dtype=np.float64) for k in npz.files}
    for k, info in meta["arrays"].items():
        if k not in arrays or _sha(arrays[k]) != info["sha256"]:
            raise ValueError(f"{directory / MODEL_FILE}: array {k!r} missing or modified")
    if meta["feature_names"] != list(FEATURE_NAMES):
        raise ValueError(f"{directory / META_FILE}: unexpected feature names")
    return arrays, meta


def _logistic_proba(arrays: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    z = ((x - arrays["scaler_mean"]) / arrays["scaler_scale"]) @ arrays["coef"].T
    z = z[:, 0] + arrays["intercept"][0]
    p = np.empty_like(z)  # numerically stable sigmoid
    pos = z >= 0
    p[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    p[~pos] = ez / (1.0 + ez)
    return np.column_stack([1.0 - p, p])


def new_pipeline() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [("scale", StandardScaler()), ("logreg", LogisticRegression(C=1.0, max_iter=1000))]
    )


def rebuild_pipeline(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Any:
    """An sklearn ``Pipeline`` equal to the trained one, rebuilt from the arrays (no pickle)."""
    pipe = new_pipeline()
    scaler, clf = pipe.named_steps["scale"], pipe.named_steps["logreg"]
    n = len(FEATURE_NAMES)
    scaler.mean_ = arrays["scaler_mean"].copy()
    scaler.scale_ = arrays["scaler_scale"].copy()
    scaler.var_ = arrays["scaler_var"].copy()
    scaler.n_features_in_ = n
    scaler.n_samples_seen_ = np.int64(meta["n_samples_seen"])
    clf.coef_ = arrays["coef"].copy()
    clf.intercept_ = arrays["intercept"].copy()
    clf.classes_ = np.arange(len(meta["classes"]))
    clf.n_features_in_ = n
    clf.n_iter_ = np.array([0], dtype=np.int32)
    return pipe


# --- the scenario ------------------------------------------------------------------------------


class LoadedLoan(TabularLoaded):
    """The built loan scenario: the model from its arrays, the feature table and its split."""

    name = NAME
    model_name = MODEL_NAME
    spec = SPEC
    classes = CLASSES

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._arrays, self.meta = load_model(self.directory)
        arrays = self._load_split(self.directory / FEATURES_FILE)
        is_train = arrays["is_train"]
        self.ids = arrays["ids"]
        self.ids_train, self.ids_holdout = self.ids[is_train], self.ids[~is_train]
        self.dataset = json.loads((self.directory / DATASET_FILE).read_text(encoding="utf-8"))

    @property
    def database_url(self) -> str:
        """Where the applications live: the SQLite file of this build, or the (password-less)
        URL of the external database it was built into."""
        if (self.directory / DB_FILE).is_file():
            return f"sqlite:///{(self.directory / DB_FILE).resolve()}"
        return str(self.dataset["database"])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = self._batch(x)
        return _logistic_proba(self._arrays, x)

    def sample_benign(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return sample_features(n, rng)

    def pipeline(self) -> Any:
        """The trained model as an sklearn ``Pipeline`` (for ART or other sklearn tooling)."""
        return rebuild_pipeline(self._arrays, self.meta)


class LoanApproval:
    """Loan approval (see the module docstring)."""

    name = NAME
    artifact = ARTIFACT_FILE
    description = (
        "Synthetic loan applicants in a SQL database (SQLite or PostgreSQL), SQL preprocessing, "
        "StandardScaler + LogisticRegression, weights saved as arrays; REST API over it."
    )

    def build(
        self,
        directory: Path,
        *,
        seed: int = 0,
        progress: Progress = quiet,
        n_applicants: int = DEFAULT_APPLICANTS,
        db_url: str | None = None,
        holdout_fraction: float = DEFAULT_HOLDOUT,
        **options: Any,
    ) -> BuiltScenario:
        """Build into ``directory``. Options: ``n_applicants`` (default 10,000), ``db_url`` (a
        SQLAlchemy URL, e.g. ``postgresql+psycopg://user@host/db``; default a SQLite file in
        ``directory``; its ``applications`` and ``training_split`` tables are replaced) and
        ``holdout_fraction`` (default 0.25)."""
        if options:
            raise TypeError(f"unknown build options for {NAME}: {', '.join(sorted(options))}")
        if n_applicants < 200:
            raise ValueError("n_applicants must be at least 200")
        if not 0.05 <= holdout_fraction <= 0.5:
            raise ValueError("holdout_fraction must be between 0.05 and 0.5")
        from sklearn.metrics import accuracy_score, roc_auc_score

        start = time.perf_counter()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files = {"model": MODEL_FILE, "model_meta": META_FILE, "features": FEATURES_FILE}
        files["dataset"] = DATASET_FILE
        files["artifact"] = ARTIFACT_FILE
        if db_url is None:
            db_url = f"sqlite:///{(directory / DB_FILE).resolve()}"
            files["database"] = DB_FILE

        rng = np.random.default_rng(seed)
        progress(f"generating {n_applicants:,} synthetic applicants (seed {seed})")
        people = generate_applicants(n_applicants, rng)
        p_approve = 1.0 / (1.0 + np.exp(-approval_logit(people.features)))
        approved = (rng.random(n_applicants) < p_approve).astype(np.int64)
        n_holdout = round(n_applicants * holdout_fraction)
        is_train = np.ones(n_applicants, dtype=bool)
        is_train[rng.permutation(n_applicants)[:n_holdout]] = False

        progress(f"writing applications and training split to {redact_url(db_url)}")
        engine = create_db_engine(db_url)
        try:
            _write_database(engine, people, approved, is_train)
            progress("preprocessing: SELECT … FROM applications JOIN training_split")
            table = preprocess(engine)
        finally:
            engine.dispose()
        if len(table.ids) != n_applicants or not np.array_equal(table.x, people.matrix()):
            raise RuntimeError("the database did not return the applicants that were written")
        np.savez(
            directory / FEATURES_FILE, ids=table.ids, x=table.x, y=table.y, is_train=table.is_train
        )

        progress("training StandardScaler + LogisticRegression")
        x_tr, y_tr = table.x[table.is_train], table.y[table.is_train]
        x_ho, y_ho = table.x[~table.is_train], table.y[~table.is_train]
        pipe = new_pipeline().fit(x_tr, y_tr)

        p_ho = pipe.predict_proba(x_ho)[:, 1]
        p_tr = pipe.predict_proba(x_tr)[:, 1]
        metrics = {
            "roc_auc": float(roc_auc_score(y_ho, p_ho)),
            "accuracy": float(accuracy_score(y_ho, (p_ho >= 0.5).astype(int))),
            "train_roc_auc": float(roc_auc_score(y_tr, p_tr)),
            "train_accuracy": float(accuracy_score(y_tr, (p_tr >= 0.5).astype(int))),
            "approval_rate": float(table.y.mean()),
            "n_train": float(len(y_tr)),
            "n_holdout": float(len(y_ho)),
        }
        metrics = {k: round(v, 6) for k, v in metrics.items()}
        dataset = {
            # SQLite: the file in this folder (the folder may be moved after the build).
            "database": f"sqlite:///{DB_FILE}" if "database" in files else redact_url(db_url),
            "tables": [TABLE, SPLIT_TABLE],
            "rows": n_applicants,
            "data_sha256": table.digest,
            "features": list(FEATURE_NAMES),
            "identifiers_not_features": ["applicant_name", "national_id"],
            "quasi_identifier_features": ["postcode_district", "age"],
            "label": {"column": "approved", "classes": list(CLASSES)},
        }
        (directory / DATASET_FILE).write_text(json.dumps(dataset, indent=2) + "\n", "utf-8")

        progress("saving the model as arrays + JSON metadata (no pickle)")
        save_model(directory, pipe, {"seed": seed, "metrics": metrics})
        # The artifact must reproduce the trained pipeline's probabilities.
        arrays, _meta = load_model(directory)
        got = _logistic_proba(arrays, x_ho)[:, 1]
        if not np.allclose(got, p_ho, rtol=0, atol=1e-12):
            raise RuntimeError("saved model does not reproduce the trained probabilities")
        import joblib

        progress("publishing the declared artifact: the pipeline as a joblib file")
        joblib.dump(pipe, directory / ARTIFACT_FILE)
        seconds = time.perf_counter() - start
        progress(
            f"loan model: holdout ROC AUC {metrics['roc_auc']:.3f}, "
            f"accuracy {metrics['accuracy']:.3f} ({seconds:.1f}s)"
        )
        return BuiltScenario(
            name=NAME,
            directory=directory,
            seed=seed,
            metrics=metrics,
            files=files,
            seconds=round(seconds, 3),
        )

    def load(self, directory: Path) -> LoadedLoan:
        return LoadedLoan(directory)


__all__ = [
    "CLASSES",
    "FEATURE_NAMES",
    "SPEC",
    "Applicants",
    "FeatureTable",
    "LoadedLoan",
    "LoanApproval",
    "age_on",
    "approval_logit",
    "generate_applicants",
    "preprocess",
    "rebuild_pipeline",
    "sample_features",
]
