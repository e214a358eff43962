"""The system description: what a security engineer writes once about an ML system.

Every field carries a description: it drives ``mlhunt schema`` (editor completion) and the docs.
Unknown keys are errors (``extra="forbid"``) so a typo is never silently ignored.
Cross-references (flows to elements, elements to boundaries, ...) are checked in
:mod:`mlhunt.system.loader`, which also resolves them into the private links used by the
threat conditions (``flow.source_element``, ``element.classifications`` ...).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

Id = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        max_length=128,
        description="Identifier: letters, digits, '_', '.', ':', '-'; unique in the file.",
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=False, frozen=False)


class Level(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def score(self) -> int:
        return _LEVEL_SCORE[self]


_LEVEL_SCORE = {Level.LOW: 1, Level.MEDIUM: 2, Level.HIGH: 3, Level.CRITICAL: 4}


class ElementKind(enum.StrEnum):
    EXTERNAL_ENTITY = "external_entity"
    ACTOR = "actor"
    PROCESS = "process"
    DATA_STORE = "data_store"
    DATA_SOURCE = "data_source"
    INGESTION = "ingestion"
    FEATURE_PIPELINE = "feature_pipeline"
    TRAINING_JOB = "training_job"
    MODEL_REGISTRY = "model_registry"
    MODEL_ARTIFACT = "model_artifact"
    INFERENCE_API = "inference_api"
    MONITORING = "monitoring"
    LLM = "llm"
    VECTOR_STORE = "vector_store"
    AGENT_TOOL = "agent_tool"
    NOTEBOOK = "notebook"
    #: An agent or orchestrator that lets an LLM choose which tools to call, with what arguments.
    ORCHESTRATOR = "orchestrator"
    #: A message bus or event stream (Kafka, Pub/Sub, SQS): a store-and-forward hop.
    MESSAGE_BUS = "message_bus"


#: Kinds drawn as external entities, processes and stores in the DFD (the STRIDE element types).
EXTERNAL_KINDS = frozenset(
    {ElementKind.EXTERNAL_ENTITY, ElementKind.ACTOR, ElementKind.DATA_SOURCE}
)
STORE_KINDS = frozenset(
    {
        ElementKind.DATA_STORE,
        ElementKind.MODEL_REGISTRY,
        ElementKind.MODEL_ARTIFACT,
        ElementKind.VECTOR_STORE,
        ElementKind.MESSAGE_BUS,
    }
)


class DataTrust(enum.StrEnum):
    """Who can write the data: anyone (customers, the public), a partner, or only us."""

    UNTRUSTED = "untrusted"
    PARTNER = "partner"
    INTERNAL = "internal"


class Deidentification(enum.StrEnum):
    NONE = "none"
    PSEUDONYMIZED = "pseudonymized"
    TOKENIZED = "tokenized"
    AGGREGATED = "aggregated"
    K_ANONYMITY = "k_anonymity"
    DIFFERENTIAL_PRIVACY = "differential_privacy"
    SYNTHETIC = "synthetic"


class LawfulBasis(enum.StrEnum):
    """Why personal data may be processed (GDPR Art. 6(1))."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTERESTS = "vital_interests"
    PUBLIC_TASK = "public_task"
    LEGITIMATE_INTERESTS = "legitimate_interests"


class OperatedBy(enum.StrEnum):
    SELF = "self"
    VENDOR = "vendor"


class Lifecycle(enum.StrEnum):
    OPERATIONAL = "operational"
    PLANNED = "planned"


class Classification(enum.StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    PERSONAL = "personal"
    SPECIAL_CATEGORY = "special_category"
    CARDHOLDER = "cardholder"

    @property
    def sensitivity(self) -> int:
        """0 (public) .. 4 (special-category / cardholder data)."""
        return _SENSITIVITY[self]

    @property
    def is_personal(self) -> bool:
        # Cardholder data identifies a person too (PAN, name): it is personal data under GDPR.
        return self in (
            Classification.PERSONAL,
            Classification.SPECIAL_CATEGORY,
            Classification.CARDHOLDER,
        )


_SENSITIVITY = {
    Classification.PUBLIC: 0,
    Classification.INTERNAL: 1,
    Classification.CONFIDENTIAL: 2,
    Classification.PERSONAL: 3,
    Classification.SPECIAL_CATEGORY: 4,
    Classification.CARDHOLDER: 4,
}


class Authentication(enum.StrEnum):
    NONE = "none"
    PASSWORD = "password"  # noqa: S105 - an enum value, not a secret
    API_KEY = "api_key"
    TOKEN = "token"  # noqa: S105 - an enum value, not a secret
    OAUTH2 = "oauth2"
    MTLS = "mtls"
    SSO = "sso"
    CLOUD_IAM = "cloud_iam"


class Authorization(enum.StrEnum):
    NONE = "none"
    COARSE = "coarse"
    RBAC = "rbac"
    ABAC = "abac"
    POLICY = "policy"


class ModelOutput(enum.StrEnum):
    SCORES = "scores"
    LABEL = "label"
    TOP_K = "top_k"
    ROUNDED_SCORES = "rounded_scores"
    TEXT = "text"
    EMBEDDING = "embedding"


class InputType(enum.StrEnum):
    TABULAR = "tabular"
    IMAGE = "image"
    TEXT = "text"
    AUDIO = "audio"
    TIME_SERIES = "time_series"
    GRAPH = "graph"
    EVENTS = "events"


class Provenance(enum.StrEnum):
    VERIFIED = "verified"
    INTERNAL = "internal"
    THIRD_PARTY = "third_party"
    PUBLIC_SCRAPED = "public_scraped"
    USER_GENERATED = "user_generated"
    UNKNOWN = "unknown"


UNTRUSTED_PROVENANCE = frozenset(
    {
        Provenance.THIRD_PARTY,
        Provenance.PUBLIC_SCRAPED,
        Provenance.USER_GENERATED,
        Provenance.UNKNOWN,
    }
)


class ControlType(enum.StrEnum):
    RATE_LIMITING = "rate_limiting"
    QUOTA = "quota"
    QUERY_AUDITING = "query_auditing"
    OUTPUT_HARDENING = "output_hardening"
    AUTHENTICATION = "authentication"
    MTLS = "mtls"
    AUTHORIZATION_POLICY = "authorization_policy"
    SECRETS_MANAGEMENT = "secrets_management"
    ADMISSION_POLICY = "admission_policy"
    NETWORK_POLICY = "network_policy"
    RESOURCE_QUOTAS = "resource_quotas"
    INPUT_VALIDATION = "input_validation"
    PARAMETERIZED_QUERIES = "parameterized_queries"
    ADVERSARIAL_TRAINING = "adversarial_training"
    INPUT_PREPROCESSING = "input_preprocessing"
    DIFFERENTIAL_PRIVACY = "differential_privacy"
    MODEL_SIGNING = "model_signing"
    DATA_PROVENANCE = "data_provenance"
    DATA_VALIDATION = "data_validation"
    ENCRYPTION_AT_REST = "encryption_at_rest"
    ENCRYPTION_IN_TRANSIT = "encryption_in_transit"
    AUDIT_LOGGING = "audit_logging"
    ANOMALY_DETECTION = "anomaly_detection"
    HUMAN_REVIEW = "human_review"
    DATA_MINIMIZATION = "data_minimization"
    PSEUDONYMIZATION = "pseudonymization"
    CONSENT_MANAGEMENT = "consent_management"
    TRANSPARENCY_NOTICE = "transparency_notice"
    RETENTION_POLICY = "retention_policy"
    LEAST_PRIVILEGE = "least_privilege"
    HIGH_AVAILABILITY = "high_availability"
    OUTPUT_FILTERING = "output_filtering"
    PROMPT_ISOLATION = "prompt_isolation"
    TOKENIZATION = "tokenization"
    WATERMARKING = "watermarking"
    #: A vendor's security assessed and bound by contract (DPA, no training on our data, breach
    #: notice, region, change notice).
    VENDOR_ASSESSMENT = "vendor_assessment"


class TrackingStatus(enum.StrEnum):
    UNCHECKED = "unchecked"
    IN_DISCUSSION = "in-discussion"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in-progress"
    MITIGATED = "mitigated"
    FALSE_POSITIVE = "false-positive"


#: ``data_subjects`` entries that mean children (lower case).
CHILD_SUBJECTS = frozenset({"child", "children", "minor", "minors", "kids", "pupils"})


@dataclass(slots=True)
class _DataLinks:
    classifications: frozenset[Classification]
    controls: frozenset[ControlType]
    control_refs: dict[ControlType, tuple[str, ...]]
    sensitivity: int = field(init=False)
    has_personal_data: bool = field(init=False)
    has_cardholder_data: bool = field(init=False)
    #: Highest confidentiality, integrity and availability need (1..4) of the data it carries.
    cia: tuple[int, int, int] = (2, 2, 2)

    def __post_init__(self) -> None:
        self.set_classifications(self.classifications)

    def set_classifications(self, value: frozenset[Classification]) -> None:
        # Derived once here: conditions read these for every rule. Few distinct sets occur.
        self.classifications = value
        derived = _DERIVED.get(value)
        if derived is None:
            derived = _DERIVED[value] = (
                max((c.sensitivity for c in value), default=0),
                any(c.is_personal for c in value),
                Classification.CARDHOLDER in value,
            )
        self.sensitivity, self.has_personal_data, self.has_cardholder_data = derived


#: (sensitivity, has personal data, has cardholder data) per set of classifications: a pure
#: function of a small domain (at most 2^6 sets), cached process-wide.
_DERIVED: dict[frozenset[Classification], tuple[int, bool, bool]] = {}


@dataclass(slots=True)
class ElementLinks(_DataLinks):
    boundaries: tuple[str, ...] = ()
    # Some data asset it holds names children among its data subjects (CHILD_SUBJECTS).
    concerns_children: bool = False
    criticality: Level = Level.MEDIUM
    receives_from: frozenset[ElementKind] = frozenset()
    sends_to: frozenset[ElementKind] = frozenset()
    receives_across_boundary: bool = False
    trains_at_vendor: bool = False
    # Set by the threat model's reachability pass (mlhunt.threatmodel.paths).
    untrusted_hops: int = -1
    untrusted_via_store: bool = False
    # Set by the same pass: a party sees this model's output (threatmodel.paths.compute_exposure).
    output_exposed: bool = False
    # Set by the same pass: an outside party chooses this model's input through a request path.
    input_chosen_by_outsider: bool = False
    # Set by the same pass: what this model emits concerns a person (personal data out).
    output_concerns_person: bool = False
    # Set by the same pass: what it can do, 0 (a lookup) .. 3 (a payment); threatmodel.paths.agency.
    agency: int = 2
    # Set by the same pass: it receives the verdict of a model (threatmodel.paths.compute_exposure).
    acts_on_model_verdict: bool = False
    # Set by the same pass: its users see content outsiders wrote (threatmodel.exposure).
    shows_others_content: bool = False
    # Set by the same pass: it reads a store or model that holds several tenants' data.
    serves_tenants: bool = False
    # Set by the same pass: a flow from a data source in another boundary states a coarse grant.
    reads_source_broadly: bool = False
    # Set by the same pass: what it sends on reaches a model whose verdict about people takes
    # effect with no person in between (directly or through a decision engine).
    feeds_people_decision: bool = False
    # Set by the same pass: the model whose verdict it acts on retrains on feedback.
    verdict_fed_back: bool = False
    # Set by the same pass: this model's verdict takes effect with no person in between.
    verdict_takes_effect: bool = False


@dataclass(slots=True)
class FlowLinks(_DataLinks):
    source: Element = None  # type: ignore[assignment]
    target: Element = None  # type: ignore[assignment]
    crosses_boundary: bool = False
    required_by_law: bool = False


class DataAsset(_Strict):
    """A kind of data the system holds or moves (applicant records, card transactions, weights)."""

    id: Id
    name: str = Field("", description="Human-readable name.")
    description: str = Field("", description="What the data is and where it comes from.")
    classification: Classification = Field(
        Classification.INTERNAL,
        description="Sensitivity: public, internal, confidential, personal, special_category "
        "(GDPR art. 9) or cardholder (PCI DSS account data).",
    )
    confidentiality: Level = Field(Level.MEDIUM, description="Confidentiality need (CIA).")
    integrity: Level = Field(Level.MEDIUM, description="Integrity need (CIA).")
    availability: Level = Field(Level.MEDIUM, description="Availability need (CIA).")
    data_subjects: list[str] = Field(
        default_factory=list,
        description="Whose personal data this is (applicants, card holders, users).",
    )
    quasi_identifiers: list[str] = Field(
        default_factory=list,
        description="Fields that re-identify a person in combination (postcode, birth date).",
    )
    trust: DataTrust = Field(
        DataTrust.INTERNAL,
        description="Who can write it: untrusted (customers, the public, scraped), partner, or "
        "internal. Untrusted and partner data are sources of taint for attack paths.",
    )
    deidentification: Deidentification = Field(
        Deidentification.NONE,
        description="How it is de-identified: none, pseudonymized, tokenized, aggregated, "
        "k_anonymity, differential_privacy or synthetic.",
    )
    lawful_basis: LawfulBasis | None = Field(
        None,
        description="Why it may be processed (personal data, GDPR Art. 6): consent, contract, "
        "legal_obligation (the law requires it, e.g. identity records under anti-money-"
        "laundering law: an attributable record is the point), vital_interests, public_task, "
        "legitimate_interests. Unstated: unknown.",
    )


class TrustBoundary(_Strict):
    """A zone of equal trust (network, cluster, namespace, account); boundaries can nest."""

    id: Id
    name: str = Field("", description="Human-readable name.")
    description: str = Field("", description="What separates this zone from its surroundings.")
    kind: str = Field("network", description="network, cluster, namespace, account, host ...")
    parent: str | None = Field(None, description="Id of the enclosing trust boundary, if nested.")


class TrainingSource(_Strict):
    """One source of a model's training data (or of its pretrained weights), with provenance."""

    name: str = Field(description="What it is, e.g. 'partner hospitals PACS export'.")
    provenance: Provenance = Field(description="Where it comes from.")
    data: str | None = Field(None, description="Id of the data asset, if described.")
    weights: bool = Field(
        False, description="Pretrained weights (a backbone), not training records."
    )


#: Model tasks whose output is no verdict about a person (see ModelProperties.decides).
NON_DECISION_TASKS = frozenset(
    {
        "ranking",
        "recommendation",
        "retrieval",
        "embedding",
        "generation",
        "summarization",
        "transcription",
        "translation",
        "ocr",
        "token_classification",
        "ner",
        "redaction",
    }
)


class ModelProperties(_Strict):
    """Properties of the model behind an ML element (training job, artifact, API, LLM)."""

    algorithm: str = Field("", description="e.g. logistic_regression, cnn, gradient_boosting.")
    task: str = Field("classification", description="classification, regression, ranking ...")
    input_type: InputType = Field(InputType.TABULAR, description="What the model reads.")
    output: ModelOutput = Field(
        ModelOutput.SCORES,
        description="What callers receive: full scores, a label only, top-k, rounded scores, "
        "text or an embedding. Scores make extraction and membership inference cheaper.",
    )
    retrains_on_feedback: bool = Field(
        False, description="Whether user feedback or production data flow back into training."
    )
    training_data_provenance: Provenance = Field(
        Provenance.INTERNAL, description="Where the training data comes from."
    )
    human_review: bool = Field(
        False, description="Whether a person reviews outputs before they take effect."
    )
    ip_value: Level = Field(
        Level.MEDIUM, description="Value of the weights as intellectual property (trade secret)."
    )
    pretrained_from: str | None = Field(
        None, description="Base model this one is fine-tuned from (transfer learning), if any."
    )
    physical_world_inputs: bool = Field(
        False,
        description="Inputs capture a scene an attacker can shape physically (patches, "
        "stickers, lighting): cameras, microphones, photographed or scanned documents and "
        "uploads. Not imaging of scenes no attacker stages (e.g. a hospital's CT scans).",
    )
    signed: bool = Field(False, description="Artifacts are signed and their hashes pinned.")
    serialization: str = Field(
        "", description="Artifact format: pickle, joblib, skops, torch, safetensors, onnx ..."
    )
    training_sources: list[TrainingSource] = Field(
        default_factory=list,
        description="Every source of training data (and pretrained weights), each with its "
        "provenance; the least trusted one counts for poisoning.",
    )

    @property
    def decides(self) -> bool:
        """Its output is a verdict about the input (a score or label: fraud, spoof, default),
        not text, a ranking, an embedding or a transformation (transcription, OCR, redaction)."""
        return self.output != ModelOutput.TEXT and self.task not in NON_DECISION_TASKS

    @property
    def untrusted_training_data(self) -> bool:
        """Some training-record source (not weights) is third-party, scraped, user-made or
        unknown."""
        if self.training_data_provenance in UNTRUSTED_PROVENANCE:
            return True
        return any(
            s.provenance in UNTRUSTED_PROVENANCE and not s.weights for s in self.training_sources
        )

    @property
    def third_party_weights(self) -> bool:
        """Pretrained weights come from outside (a hub, a vendor)."""
        return any(
            s.weights and s.provenance not in (Provenance.INTERNAL, Provenance.VERIFIED)
            for s in self.training_sources
        )


class Element(_Strict):
    """A node of the data-flow diagram: an actor, process, store or ML component."""

    id: Id
    name: str = Field("", description="Human-readable name (defaults to the id).")
    kind: ElementKind = Field(description="What this element is.")
    description: str = Field("", description="What it does.")
    technology: str = Field("", description="e.g. PostgreSQL, Spark, Kubeflow, FastAPI, KServe.")
    boundary: str | None = Field(None, description="Id of the trust boundary it runs in.")
    data: list[str] = Field(
        default_factory=list, description="Ids of the data assets it stores or processes."
    )
    internet_facing: bool = Field(False, description="Reachable from the internet.")
    authentication: Authentication = Field(
        Authentication.NONE, description="How callers of this element authenticate."
    )
    authorization: Authorization = Field(
        Authorization.NONE, description="How access is authorised once authenticated."
    )
    rate_limit: str | None = Field(
        None, description="Per-client request limit, e.g. '100/minute'; empty means none."
    )
    audit_logging: bool = Field(False, description="Security-relevant actions are logged.")
    input_validation: bool = Field(False, description="Inputs are validated against a schema.")
    encrypted_at_rest: bool = Field(False, description="Stored data is encrypted (stores).")
    uses_sql: bool = Field(
        False, description="Builds or runs SQL queries (a relational database or its client)."
    )
    privileged: bool = Field(
        False, description="Runs with elevated privileges (root, privileged pod, broad IAM)."
    )
    shared_tenancy: bool = Field(
        False, description="Runs user-supplied code or shares nodes with other tenants."
    )
    multi_tenant: bool = Field(
        False,
        description=(
            "Holds, or (a model) is trained on, the data of several tenants (customers, firms)"
            " and serves all of them, kept apart only by filters or access lists in the"
            " application (one index or table for all, one model fine-tuned on everyone's data)."
        ),
    )
    resource_limits: bool = Field(
        False, description="CPU/memory/GPU quotas bound its resource use."
    )
    high_availability: bool = Field(False, description="Replicated with failover.")
    acls: bool = Field(
        False, description="Per-topic or per-resource access lists (message buses, stores)."
    )
    operated_by: OperatedBy = Field(
        OperatedBy.SELF,
        description="Who runs it: self, or a vendor (a hosted API): then findings are about the "
        "supply chain and the contract, not the vendor's internals.",
    )
    lifecycle: Lifecycle = Field(
        Lifecycle.OPERATIONAL,
        description="operational, or planned (not built yet: findings are design requirements).",
    )
    limits: list[str] = Field(
        default_factory=list,
        description="Hard limits on what it may do (a tool's refund cap, allowed scopes); "
        "stated limits count as a least-privilege control.",
    )
    budget: str | None = Field(
        None, description="Token or cost budget per user or per day (LLMs, agents)."
    )
    criticality: Level | None = Field(
        None, description="Business criticality; defaults to the system's."
    )
    model: ModelProperties | None = Field(
        None, description="Model properties, for elements that train, hold or serve a model."
    )

    # Derived data resolved by the loader (mlhunt.system.loader.link); one slotted object, read
    # through __pydantic_private__ because pydantic's private-attribute lookup is slow in hot loops.
    _links: ElementLinks | None = PrivateAttr(default=None)

    @property
    def _l(self) -> ElementLinks:
        links = self.__pydantic_private__["_links"]  # type: ignore[index]
        if links is None:
            raise RuntimeError(f"element {self.id!r} is not linked (use mlhunt.system.load_system)")
        return links  # type: ignore[no-any-return]

    @property
    def label(self) -> str:
        return self.name or self.id

    @property
    def classifications(self) -> frozenset[Classification]:
        """Classifications of the data it stores or processes, and of the flows touching it."""
        return self._l.classifications

    @property
    def controls(self) -> frozenset[ControlType]:
        """Control types in place: declared controls, its boundaries' and its own attributes'."""
        return self._l.controls

    @property
    def control_refs(self) -> dict[ControlType, tuple[str, ...]]:
        """For each control type in place, the control ids (or attributes) providing it."""
        return self._l.control_refs

    @property
    def boundaries(self) -> tuple[str, ...]:
        """Its trust boundary and every boundary enclosing it, innermost first."""
        return self._l.boundaries

    @property
    def business_criticality(self) -> Level:
        """Its criticality, or the system's when not set."""
        return self._l.criticality

    @property
    def sensitivity(self) -> int:
        """Highest sensitivity (0..4) of the data it touches."""
        return self._l.sensitivity

    @property
    def has_personal_data(self) -> bool:
        return self._l.has_personal_data

    @property
    def has_cardholder_data(self) -> bool:
        return self._l.has_cardholder_data

    @property
    def is_external(self) -> bool:
        return self.kind in EXTERNAL_KINDS

    @property
    def is_store(self) -> bool:
        return self.kind in STORE_KINDS

    @property
    def is_process(self) -> bool:
        return not self.is_external and not self.is_store

    @property
    def has_model(self) -> bool:
        return self.model is not None

    @property
    def receives_from(self) -> frozenset[ElementKind]:
        """Kinds of the elements with a flow into this one."""
        return self._l.receives_from

    @property
    def receives_across_boundary(self) -> bool:
        """Some flow into it comes from another trust boundary."""
        return self._l.receives_across_boundary

    @property
    def sends_to(self) -> frozenset[ElementKind]:
        """Kinds of the elements this one has a flow to."""
        return self._l.sends_to

    @property
    def reached_by_untrusted(self) -> bool:
        """Content from an untrusted source reaches it, through any number of hops."""
        return self._l.untrusted_hops >= 0

    @property
    def untrusted_hops(self) -> int:
        """Flows from the nearest untrusted source (0: it is one); -1 when none reaches it."""
        return self._l.untrusted_hops

    @property
    def untrusted_via_store(self) -> bool:
        """Untrusted content reaches it after resting in a store (stored, then retrieved)."""
        return self._l.untrusted_via_store

    @property
    def output_exposed(self) -> bool:
        """A party (an internet-facing entry's callers, an external entity, a person) sees this
        model's output: replied to up the chain of callers or pushed on, not left in a store,
        nor consumed by a process that passes none of it on (a gateway that quarantines)."""
        return self._l.output_exposed

    @property
    def input_chosen_by_outsider(self) -> bool:
        """A party (an internet-facing entry's callers, an external entity, a person, a data
        source) sends what this model is asked, along flows through processes or a message bus,
        not from a store it or its pipeline reads (training data, features at rest)."""
        return self._l.input_chosen_by_outsider

    @property
    def feeds_people_decision(self) -> bool:
        """What it sends on reaches, through services and message buses, a model whose verdict
        about people takes effect with no person in between (a ban, a decline)."""
        return self._l.feeds_people_decision

    @property
    def reads_source_broadly(self) -> bool:
        """Not internet-facing, it pulls from a data source in another boundary (a partner's
        EHR, a customer's CRM) on a flow that states ``authorization: coarse``: its grant there
        reads more than the data it needs (every record, every resource type)."""
        return self._l.reads_source_broadly

    @property
    def serves_tenants(self) -> bool:
        """A process that reads from a ``multi_tenant`` store or model: the filter that keeps
        one tenant's users from another's records is its own code."""
        return self._l.serves_tenants

    @property
    def shows_others_content(self) -> bool:
        """A process that people use (a flow from an actor) and to which content that outsiders
        wrote (data of ``trust: untrusted``) comes from another service or store: an analyst's
        console showing players' appeals, a workbench showing patients' messages."""
        return self._l.shows_others_content

    @property
    def concerns_children(self) -> bool:
        """A data asset it holds names children among its ``data_subjects`` (minors, pupils)."""
        return self._l.concerns_children

    @property
    def trains_at_vendor(self) -> bool:
        """A training job whose every flow out goes to a vendor-operated element (and one does):
        it uploads its data to a vendor's fine-tuning API and trains there, on no workload of
        ours."""
        return self._l.trains_at_vendor

    @property
    def output_concerns_person(self) -> bool:
        """This model's output is about a person: a flow out of it carries personal data, or
        (it answers by reply, or a flow out names no data) it holds personal data itself."""
        return self._l.output_concerns_person

    @property
    def acts_on_model_verdict(self) -> bool:
        """A process to which a flow from a serving model (inference API, LLM) brings a verdict
        (``model.decides``, no human review stated there) about a person (the model's
        ``output_concerns_person``): where a decision engine combines scores, the decision about
        a person is taken here."""
        return self._l.acts_on_model_verdict

    @property
    def verdict_takes_effect(self) -> bool:
        """This serving model's output (not text) is acted on with no person in between: no
        human review in place, and it decides (``model.decides``) or ``human_review: false`` is
        stated; a flow brings it to an agent or tool that acts, or as a command (data of
        critical integrity) to a process. A ranking that rejects people decides."""
        return self._l.verdict_takes_effect

    @property
    def integrity_need(self) -> int:
        """Highest integrity need (1 low .. 4 critical) of the data it holds or processes."""
        return self._l.cia[1]

    @property
    def has_side_effects(self) -> bool:
        """It does more than a read-only lookup at a store or a vendor: it fetches from parties
        no contract fixes (any web site), writes, sends data out or pays."""
        return self._l.agency >= 1

    @property
    def agency(self) -> int:
        """What it can do, read from the flows of agent tools, orchestrators and LLMs (2 for
        other kinds): 0 a lookup, 1 a fetch from anywhere, 2 a write, a message with data, a
        call to another service (or nothing drawn), 3 a payment (cardholder data sent out)."""
        return self._l.agency

    @property
    def is_vendor(self) -> bool:
        return self.operated_by == OperatedBy.VENDOR

    @property
    def is_planned(self) -> bool:
        return self.lifecycle == Lifecycle.PLANNED


class Flow(_Strict):
    """An edge of the data-flow diagram: data moving from one element to another."""

    id: Id
    source: str = Field(description="Id of the element the data comes from.")
    target: str = Field(description="Id of the element the data goes to.")
    name: str = Field("", description="What moves, in words (defaults to the id).")
    description: str = Field("", description="Details of the exchange.")
    protocol: str = Field("", description="e.g. https, grpc, jdbc, kafka, s3, file.")
    encrypted: bool = Field(False, description="Encrypted in transit (TLS, mTLS, VPN).")
    authenticated: bool = Field(False, description="The sender is authenticated.")
    authorization: Authorization = Field(
        Authorization.NONE, description="How the receiver authorises the request."
    )
    data: list[str] = Field(default_factory=list, description="Ids of the data assets it carries.")

    _links: FlowLinks | None = PrivateAttr(default=None)

    @property
    def _l(self) -> FlowLinks:
        links = self.__pydantic_private__["_links"]  # type: ignore[index]
        if links is None:
            raise RuntimeError(f"flow {self.id!r} is not linked (use mlhunt.system.load_system)")
        return links  # type: ignore[no-any-return]

    @property
    def label(self) -> str:
        return self.name or self.id

    @property
    def source_element(self) -> Element:
        return self._l.source

    @property
    def target_element(self) -> Element:
        return self._l.target

    @property
    def classifications(self) -> frozenset[Classification]:
        return self._l.classifications

    @property
    def controls(self) -> frozenset[ControlType]:
        """Control types in place: declared for it, for a boundary around both ends, or implied
        by its attributes (encrypted, authenticated)."""
        return self._l.controls

    @property
    def control_refs(self) -> dict[ControlType, tuple[str, ...]]:
        return self._l.control_refs

    @property
    def crosses_boundary(self) -> bool:
        """Source and target sit in different trust boundaries."""
        return self._l.crosses_boundary

    @property
    def sensitivity(self) -> int:
        return self._l.sensitivity

    @property
    def has_personal_data(self) -> bool:
        return self._l.has_personal_data

    @property
    def has_cardholder_data(self) -> bool:
        return self._l.has_cardholder_data

    @property
    def required_by_law(self) -> bool:
        """Every personal data asset it carries is held under a legal obligation
        (``lawful_basis: legal_obligation``): the law wants the record, attributable."""
        return self._l.required_by_law

    @property
    def integrity_need(self) -> int:
        """Highest integrity need (1 low .. 4 critical) of the data it carries."""
        return self._l.cia[1]


class Control(_Strict):
    """A security or privacy control that is in place (not a wish: see risk_tracking for plans)."""

    id: Id
    type: ControlType = Field(description="What kind of control it is.")
    applies_to: list[str] = Field(
        description="Ids of the elements and flows it protects.", min_length=1
    )
    description: str = Field("", description="How it is implemented.")
    implementation: str = Field(
        "", description="The product or mechanism, e.g. 'Vault database secrets engine'."
    )


class RiskTracking(_Strict):
    """The team's decision about one threat (Threagile-style risk tracking)."""

    threat: str = Field(
        description="Finding id ('RULE-ID@target'); shell-style wildcards are allowed."
    )
    status: TrackingStatus = Field(description="Where the team stands on this threat.")
    justification: str = Field("", description="Why (required in spirit for accepted risks).")
    ticket: str = Field("", description="Issue tracker reference.")
    date: str = Field("", description="When the decision was taken (YYYY-MM-DD).")
    checked_by: str = Field("", description="Who took it.")


class SystemDescription(_Strict):
    """An ML system, described once: the input of ``mlhunt model`` and ``mlhunt run``."""

    name: str = Field(description="Name of the system.")
    description: str = Field("", description="What the system does and for whom.")
    version: str = Field("", description="Version of this description.")
    owner: str = Field("", description="Team or person accountable for the system.")
    criticality: Level = Field(
        Level.MEDIUM, description="Business criticality; drives impact in risk scores."
    )
    regulations: list[str] = Field(
        default_factory=list, description="Regimes the system is under: pci_dss, gdpr, ..."
    )
    data_assets: list[DataAsset] = Field(
        default_factory=list, description="The data the system holds or moves."
    )
    trust_boundaries: list[TrustBoundary] = Field(
        default_factory=list, description="Zones of trust; elements name the one they run in."
    )
    elements: list[Element] = Field(description="Nodes of the data-flow diagram.", min_length=1)
    flows: list[Flow] = Field(default_factory=list, description="Edges of the data-flow diagram.")
    controls: list[Control] = Field(
        default_factory=list, description="Controls in place, and what they protect."
    )
    risk_tracking: list[RiskTracking] = Field(
        default_factory=list, description="Decisions about individual threats."
    )
