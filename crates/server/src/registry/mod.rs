//! The registry: what each kind is (its [`ResourceInfo`]) and how it is written (its
//! [`Strategy`]: normalization, defaults, validation, table columns, selectable fields), as
//! kube-apiserver's `pkg/registry/<group>/<kind>/strategy.go` files do.
//!
//! Besides the stored kinds, the registry names the *virtual* kinds (token and access reviews):
//! create-only resources with no storage, which discovery and OpenAPI advertise and the server
//! answers itself ([`Registry::virtual_infos`]).
//!
//! Architecture invariant: strategies are pure functions of their inputs (objects as
//! `serde_json::Value`, the clock passed in); they never touch storage or HTTP.

pub mod event;
pub mod namespace;
pub mod rbac;
pub mod review;
pub mod secret;
pub mod serviceaccount;

use serde_json::Value;
use strongroom_api::ErrorList;
use strongroom_api::managed_fields::LastApplied;
use strongroom_api::patch::StrategicSchema;

use crate::discovery::Subresource;
use crate::object::Access;
use crate::status::{ApiError, Qualified};

/// Everything discovery, OpenAPI, routing and messages need to know about a resource.
#[derive(Debug)]
pub struct ResourceInfo {
    /// API group; `""` for core.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub list_kind: &'static str,
    /// Lower-case plural, as in URLs: `secrets`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Whether DELETE answers with the deleted object (Namespaces) or a success Status (Secrets,
    /// as kube-apiserver's secret storage: the object would hand values to a mere deleter).
    pub return_deleted_object: bool,
    /// Field selectors this resource accepts (Kubernetes' field label conversions for the kind).
    pub selectable_fields: &'static [&'static str],
    /// Subresources served under an object's path (`serviceaccounts/token`), as discovery and
    /// OpenAPI describe them.
    pub subresources: &'static [Subresource],
}

impl ResourceInfo {
    /// `v1` for core, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    pub fn qualified(&self) -> Qualified<'static> {
        Qualified { group: self.group, plural: self.plural }
    }
}

pub const STANDARD_VERBS: &[&str] =
    &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// The verbs of a virtual kind: it can only be created (reviews are answered, never stored).
pub const CREATE_ONLY_VERBS: &[&str] = &["create"];

/// The field selectors every kind accepts (`DefaultMetaV1FieldSelectorConversion`).
pub const METADATA_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// One column of a kind's server-side Table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub type_: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    pub priority: i32,
}

/// The Name column every kind's table starts with (kube-apiserver's default table convertor).
pub const NAME_COLUMN: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    priority: 0,
};

/// The Created At column of kube-apiserver's default table convertor (Roles, ClusterRoles): the
/// creation time as an RFC 3339 string in UTC.
pub const CREATED_AT_COLUMN: Column =
    Column { name: "Created At", type_: "date", format: "", description: AGE_COLUMN.description, priority: 0 };

/// The Age column, computed from `creationTimestamp` when a table is rendered.
pub const AGE_COLUMN: Column = Column {
    name: "Age",
    type_: "string",
    format: "",
    description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    priority: 0,
};

/// One cell of a row. Age is computed when the table is rendered, from the object's
/// `creationTimestamp`, exactly as kubectl shows it.
#[derive(Debug, Clone)]
pub enum Cell {
    Name,
    Age,
    /// The time elapsed since a moment (Unix seconds), computed when the table is rendered and
    /// printed as the Age column is (an Event's LAST SEEN); `<unknown>` without a moment, as
    /// kube-apiserver's `translateTimestampSince` prints a zero time.
    Since(Option<i64>),
    Value(Value),
}

pub trait Strategy: Send + Sync + 'static {
    fn info(&self) -> &'static ResourceInfo;

    /// Turns a decoded request object into the canonical stored form through the kind's typed
    /// model (defaults, `stringData` folding, …). Returns the unknown fields it dropped (paths),
    /// which `fieldValidation` turns into errors or warnings.
    fn normalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError>;

    /// Fills kind-specific fields of a new object (status, finalizers).
    fn prepare_for_create(&self, _obj: &mut Value) {}

    /// Carries fields a client may not change on update (status, spec.finalizers) over from `old`.
    fn prepare_for_update(&self, _new: &mut Value, _old: &Value) {}

    /// Kind-specific validation of a new object (object metadata is validated by the caller).
    fn validate(&self, obj: &Value) -> ErrorList;

    /// Kind-specific validation of an update (object metadata rules included).
    fn validate_update(&self, new: &Value, old: &Value) -> ErrorList;

    /// The values of `selectable_fields` for field selectors.
    fn fields(&self, obj: &Value) -> Vec<(&'static str, String)>;

    fn columns(&self) -> &'static [Column];

    fn cells(&self, obj: &Value) -> Vec<Cell>;

    /// The schema that drives strategic merge patches and managedFields.
    fn strategic_schema(&self) -> &StrategicSchema;

    /// Whether a PUT of a missing object creates it (kube-apiserver's `AllowCreateOnUpdate`:
    /// true for RBAC kinds).
    fn allow_create_on_update(&self) -> bool {
        false
    }

    /// How server-side apply reads and rewrites `last-applied-configuration` for this kind.
    fn last_applied(&self) -> LastApplied<'_> {
        LastApplied::Plain
    }

    /// The top-level fields that hold secret values (`data`, `stringData` for Secrets). A JSON
    /// patch may move or copy them only within these fields, so no error can quote a value.
    fn value_fields(&self) -> &'static [&'static str] {
        &[]
    }

    /// What the authorizer needs from a stored object (a role's rules, a binding's role and
    /// subjects), extracted once when the cache decodes it, so no request parses JSON to decide.
    fn access(&self, _obj: &Value) -> Option<Access> {
        None
    }
}

/// All kinds strongroom serves.
pub struct Registry {
    strategies: Vec<Box<dyn Strategy>>,
}

impl Registry {
    pub fn new(digest_key: secret::DigestKey) -> Self {
        Registry {
            strategies: vec![
                Box::new(secret::SecretStrategy::new(digest_key)),
                Box::new(namespace::NamespaceStrategy::new()),
                Box::new(serviceaccount::ServiceAccountStrategy::new()),
                Box::new(event::EventStrategy::new()),
                Box::new(rbac::RoleStrategy::new()),
                Box::new(rbac::ClusterRoleStrategy::new()),
                Box::new(rbac::RoleBindingStrategy::new()),
                Box::new(rbac::ClusterRoleBindingStrategy::new()),
            ],
        }
    }

    /// The stored kinds' strategies.
    pub fn all(&self) -> impl Iterator<Item = &dyn Strategy> {
        self.strategies.iter().map(|s| s.as_ref())
    }

    /// The virtual kinds: create-only, never stored, answered by the server itself. They have no
    /// strategy, so [`Registry::lookup`] never returns them.
    pub fn virtual_infos(&self) -> &'static [&'static ResourceInfo] {
        review::INFOS
    }

    /// Every resource served, stored then virtual: what discovery and OpenAPI describe.
    pub fn infos(&self) -> Vec<&'static ResourceInfo> {
        self.all().map(|s| s.info()).chain(self.virtual_infos().iter().copied()).collect()
    }

    /// The strategy of the stored kind `group`/`version`/`plural`, if served.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&dyn Strategy> {
        self.all().find(|s| {
            let i = s.info();
            i.group == group && i.version == version && i.plural == plural
        })
    }

    /// The strategy that owns a storage resource segment (`secrets`).
    pub fn for_storage_resource(&self, plural: &str) -> Option<&dyn Strategy> {
        self.all().find(|s| s.info().plural == plural)
    }
}
