//! ServiceAccounts and the four RBAC kinds through the real kubectl (as the admin, who is in
//! `system:masters`) and kube-rs: the commands of Kubernetes' RBAC docs, with the output and the
//! error lines kubectl prints against a real 1.32 cluster.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams};

use crate::server;

/// The rows of a `kubectl get` table, split into columns, without the `default` ServiceAccount
/// that the ServiceAccounts controller may have created in the meantime.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|cells| !cells.first().is_some_and(|c| c == "serviceaccount/default" || c == "default"))
        .collect()
}

fn cells(row: &[String], n: usize) -> Vec<&str> {
    row.iter().take(n).map(String::as_str).collect()
}

#[test]
fn create_get_describe_delete_service_accounts_roles_and_bindings() {
    let s = server();
    s.kubectl(&["create", "namespace", "team"]).stdout_is("namespace/team created\n");
    s.kubectl(&["create", "serviceaccount", "builder", "-n", "team"]).stdout_is("serviceaccount/builder created\n");
    s.kubectl(&[
        "create",
        "role",
        "secret-reader",
        "-n",
        "team",
        "--verb=get",
        "--verb=list",
        "--resource=secrets",
        "--resource-name=db",
    ])
    .stdout_is("role.rbac.authorization.k8s.io/secret-reader created\n");
    s.kubectl(&["create", "clusterrole", "health-reader", "--verb=get", "--non-resource-url=/healthz"])
        .stdout_is("clusterrole.rbac.authorization.k8s.io/health-reader created\n");
    s.kubectl(&[
        "create",
        "rolebinding",
        "readers",
        "-n",
        "team",
        "--role=secret-reader",
        "--user=alice",
        "--user=bob",
        "--group=devs",
        "--serviceaccount=team:builder",
    ])
    .stdout_is("rolebinding.rbac.authorization.k8s.io/readers created\n");
    s.kubectl(&[
        "create",
        "clusterrolebinding",
        "health",
        "--clusterrole=health-reader",
        "--group=system:authenticated",
    ])
    .stdout_is("clusterrolebinding.rbac.authorization.k8s.io/health created\n");

    let table = s.kubectl(&["get", "sa,roles,rolebindings", "-n", "team"]).ok();
    let rows = rows(&table);
    assert_eq!(rows.len(), 6, "{table}");
    assert_eq!(rows[0], ["NAME", "SECRETS", "AGE"], "{table}");
    assert_eq!(cells(&rows[1], 2), ["serviceaccount/builder", "0"], "{table}");
    assert_eq!(rows[2], ["NAME", "CREATED", "AT"], "{table}");
    assert_eq!(rows[3][0], "role.rbac.authorization.k8s.io/secret-reader", "{table}");
    // Created At is an RFC 3339 time in UTC, as the default table convertor prints it.
    let created = &rows[3][1];
    assert!(created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T', "{table}");
    assert_eq!(rows[4], ["NAME", "ROLE", "AGE"], "{table}");
    assert_eq!(cells(&rows[5], 2), ["rolebinding.rbac.authorization.k8s.io/readers", "Role/secret-reader"], "{table}");
    assert!(rows[5][2].ends_with('s'), "{table}");

    let wide = s.kubectl(&["get", "rolebinding", "readers", "-n", "team", "-o", "wide"]).ok();
    let lines: Vec<&str> = wide.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    );
    // The user list is joined with ", ", so it spans two whitespace-separated words.
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[..2], ["readers", "Role/secret-reader"], "{wide}");
    assert_eq!(row[3..], ["alice,", "bob", "devs", "team/builder"], "{wide}");

    let wide = s.kubectl(&["get", "clusterrolebinding", "health", "-o", "wide"]).ok();
    let row: Vec<&str> = wide.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..2], ["health", "ClusterRole/health-reader"], "{wide}");
    assert_eq!(row[3..], ["system:authenticated"], "{wide}");

    let described = s.kubectl(&["describe", "role", "secret-reader", "-n", "team"]).ok();
    let lines: Vec<&str> = described.lines().collect();
    assert_eq!(
        lines,
        [
            "Name:         secret-reader",
            "Labels:       <none>",
            "Annotations:  <none>",
            "PolicyRule:",
            "  Resources  Non-Resource URLs  Resource Names  Verbs",
            "  ---------  -----------------  --------------  -----",
            "  secrets    []                 [db]            [get list]",
        ],
        "{described}"
    );
    let described = s.kubectl(&["describe", "rolebinding", "readers", "-n", "team"]).ok();
    assert!(described.contains("Role:\n  Kind:  Role\n  Name:  secret-reader\n"), "{described}");
    assert!(described.contains("  ServiceAccount  builder  team"), "{described}");

    s.kubectl(&["get", "clusterrole", "health-reader", "-o", "jsonpath={.rules[0].nonResourceURLs}"])
        .stdout_is(r#"["/healthz"]"#);
    s.kubectl(&["get", "rolebinding", "readers", "-n", "team", "-o", "jsonpath={.subjects[0].apiGroup}"])
        .stdout_is("rbac.authorization.k8s.io");

    s.kubectl(&["delete", "rolebinding", "readers", "-n", "team"])
        .stdout_is("rolebinding.rbac.authorization.k8s.io \"readers\" deleted\n");
    s.kubectl(&["delete", "role", "secret-reader", "-n", "team"])
        .stdout_is("role.rbac.authorization.k8s.io \"secret-reader\" deleted\n");
    s.kubectl(&["delete", "clusterrolebinding", "health"])
        .stdout_is("clusterrolebinding.rbac.authorization.k8s.io \"health\" deleted\n");
    s.kubectl(&["delete", "clusterrole", "health-reader"])
        .stdout_is("clusterrole.rbac.authorization.k8s.io \"health-reader\" deleted\n");
    s.kubectl(&["delete", "serviceaccount", "builder", "-n", "team"]).stdout_is("serviceaccount \"builder\" deleted\n");
    // RBAC names are path segments, not DNS names: colons and capitals are fine.
    s.kubectl(&["create", "clusterrole", "team:Secret-Reader", "--verb=get", "--resource=secrets"])
        .stdout_is("clusterrole.rbac.authorization.k8s.io/team:Secret-Reader created\n");
    s.kubectl(&["get", "clusterrole", "team:Secret-Reader", "-o", "name"])
        .stdout_is("clusterrole.rbac.authorization.k8s.io/team:Secret-Reader\n");
    s.kubectl(&["delete", "clusterrole", "team:Secret-Reader"])
        .stdout_is("clusterrole.rbac.authorization.k8s.io \"team:Secret-Reader\" deleted\n");
    s.kubectl(&["get", "role", "secret-reader", "-n", "team"])
        .stderr_is("Error from server (NotFound): roles.rbac.authorization.k8s.io \"secret-reader\" not found\n");
    s.kubectl(&["get", "sa", "builder", "-n", "team"])
        .stderr_is("Error from server (NotFound): serviceaccounts \"builder\" not found\n");
}

const RBAC_YAML: &str = "\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: secret-reader
  namespace: apps
rules:
- apiGroups: [\"\"]
  resources: [\"secrets\"]
  verbs: [\"get\", \"watch\", \"list\"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: read-secrets
  namespace: apps
subjects:
- kind: User
  name: jane
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: Role
  name: secret-reader
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: namespace-viewer
rules:
- apiGroups: [\"\"]
  resources: [\"namespaces\"]
  verbs: [\"get\", \"list\"]
- nonResourceURLs: [\"/healthz\", \"/version\"]
  verbs: [\"get\"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: view-namespaces
subjects:
- kind: Group
  name: viewers
  apiGroup: rbac.authorization.k8s.io
- kind: ServiceAccount
  name: builder
  namespace: apps
roleRef:
  kind: ClusterRole
  name: namespace-viewer
  apiGroup: rbac.authorization.k8s.io
";

#[test]
fn apply_all_four_kinds_then_unchanged_and_role_ref_is_immutable() {
    let s = server();
    s.kubectl(&["create", "namespace", "apps"]).ok();
    s.kubectl_stdin(&["apply", "-f", "-"], RBAC_YAML).stdout_is(
        "role.rbac.authorization.k8s.io/secret-reader created\n\
         rolebinding.rbac.authorization.k8s.io/read-secrets created\n\
         clusterrole.rbac.authorization.k8s.io/namespace-viewer created\n\
         clusterrolebinding.rbac.authorization.k8s.io/view-namespaces created\n",
    );
    s.kubectl_stdin(&["apply", "-f", "-"], RBAC_YAML).stdout_is(
        "role.rbac.authorization.k8s.io/secret-reader unchanged\n\
         rolebinding.rbac.authorization.k8s.io/read-secrets unchanged\n\
         clusterrole.rbac.authorization.k8s.io/namespace-viewer unchanged\n\
         clusterrolebinding.rbac.authorization.k8s.io/view-namespaces unchanged\n",
    );
    // A changed rule is patched in place.
    let more_verbs = RBAC_YAML.replacen("verbs: [\"get\", \"list\"]", "verbs: [\"get\", \"list\", \"watch\"]", 1);
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &more_verbs).ok();
    assert!(out.contains("clusterrole.rbac.authorization.k8s.io/namespace-viewer configured\n"), "{out}");
    s.kubectl(&["get", "clusterrole", "namespace-viewer", "-o", "jsonpath={.rules[0].verbs}"])
        .stdout_is(r#"["get","list","watch"]"#);

    // Kubernetes refuses to change what a binding grants; the client must delete and recreate.
    let other_role = RBAC_YAML.replace("  name: secret-reader\n  apiGroup", "  name: other-role\n  apiGroup");
    assert_ne!(other_role, RBAC_YAML);
    let err = s.kubectl_stdin(&["apply", "-f", "-"], &other_role).fails();
    assert_eq!(
        err,
        "The RoleBinding \"read-secrets\" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"other-role\"}: cannot change roleRef\n"
    );
    s.kubectl(&["get", "rolebinding", "read-secrets", "-n", "apps", "-o", "jsonpath={.roleRef.name}"])
        .stdout_is("secret-reader");

    // Server-side apply of the same objects takes ownership without changing them.
    let out = s.kubectl_stdin(&["apply", "--server-side", "--force-conflicts", "-f", "-"], RBAC_YAML).ok();
    assert!(out.contains("rolebinding.rbac.authorization.k8s.io/read-secrets serverside-applied\n"), "{out}");

    // Merge, JSON and strategic patches; replace; label.
    s.kubectl(&[
        "patch",
        "rolebinding",
        "read-secrets",
        "-n",
        "apps",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/subjects/-","value":{"kind":"Group","name":"auditors"}}]"#,
    ])
    .stdout_is("rolebinding.rbac.authorization.k8s.io/read-secrets patched\n");
    // The defaults apply to patched objects too.
    s.kubectl(&["get", "rolebinding", "read-secrets", "-n", "apps", "-o", "jsonpath={.subjects[1].apiGroup}"])
        .stdout_is("rbac.authorization.k8s.io");
    s.kubectl(&["create", "serviceaccount", "builder", "-n", "apps"]).ok();
    s.kubectl(&[
        "patch",
        "serviceaccount",
        "builder",
        "-n",
        "apps",
        "-p",
        r#"{"secrets":[{"name":"tok","namespace":"elsewhere"}]}"#,
    ])
    .stdout_is("serviceaccount/builder patched\n");
    // Secret references keep only their name.
    s.kubectl(&["get", "sa", "builder", "-n", "apps", "-o", "jsonpath={.secrets}"]).stdout_is(r#"[{"name":"tok"}]"#);
    let row = rows(&s.kubectl(&["get", "sa", "builder", "-n", "apps"]).ok()).remove(1);
    assert_eq!(cells(&row, 2), ["builder", "1"]);
    let role = s.kubectl(&["get", "role", "secret-reader", "-n", "apps", "-o", "json"]).ok();
    let role = role.replace("\"watch\"", "\"watch\", \"delete\"");
    s.kubectl_stdin(&["replace", "-f", "-"], &role)
        .stdout_is("role.rbac.authorization.k8s.io/secret-reader replaced\n");
    s.kubectl(&["get", "role", "secret-reader", "-n", "apps", "-o", "jsonpath={.rules[0].verbs}"])
        .stdout_is(r#"["get","watch","delete","list"]"#);
    s.kubectl(&["label", "clusterrolebinding", "view-namespaces", "team=infra"])
        .stdout_is("clusterrolebinding.rbac.authorization.k8s.io/view-namespaces labeled\n");
    s.kubectl(&["get", "clusterrolebindings", "-l", "team=infra", "-o", "name"])
        .stdout_is("clusterrolebinding.rbac.authorization.k8s.io/view-namespaces\n");
    s.kubectl(&["get", "roles", "-A", "--field-selector", "metadata.namespace=apps", "-o", "name"])
        .stdout_is("role.rbac.authorization.k8s.io/secret-reader\n");

    s.kubectl_stdin(&["delete", "-f", "-"], RBAC_YAML).stdout_is(
        "role.rbac.authorization.k8s.io \"secret-reader\" deleted\n\
         rolebinding.rbac.authorization.k8s.io \"read-secrets\" deleted\n\
         clusterrole.rbac.authorization.k8s.io \"namespace-viewer\" deleted\n\
         clusterrolebinding.rbac.authorization.k8s.io \"view-namespaces\" deleted\n",
    );
}

#[test]
fn invalid_objects_are_refused_with_kubernetes_messages() {
    let s = server();
    let role = "\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: broken
  namespace: default
rules:
- resources: [\"secrets\"]
  verbs: [\"get\"]
";
    s.kubectl_stdin(&["create", "-f", "-"], role).stderr_is(
        "The Role \"broken\" is invalid: rules[0].apiGroups: Required value: resource rules must supply at least one api group\n",
    );
    let role = "\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: broken
  namespace: default
rules:
- nonResourceURLs: [\"/healthz\"]
  verbs: [\"get\"]
";
    s.kubectl_stdin(&["apply", "-f", "-"], role).stderr_is(
        "The Role \"broken\" is invalid: rules[0].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs\n",
    );
    let binding = "\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: broken
subjects:
- kind: ServiceAccount
  name: builder
roleRef:
  kind: Role
  name: view
  apiGroup: rbac.authorization.k8s.io
";
    s.kubectl_stdin(&["create", "-f", "-"], binding).stderr_is(
        "The ClusterRoleBinding \"broken\" is invalid: \n\
         * roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"\n\
         * subjects[0].namespace: Required value\n",
    );
    s.kubectl(&["create", "clusterrole", "x/y", "--verb=get", "--resource=secrets"]).fails();
    // Nothing refused was stored.
    s.kubectl(&["get", "role", "broken", "-n", "default"])
        .stderr_is("Error from server (NotFound): roles.rbac.authorization.k8s.io \"broken\" not found\n");
    s.kubectl(&["get", "clusterrolebinding", "broken"]).stderr_is(
        "Error from server (NotFound): clusterrolebindings.rbac.authorization.k8s.io \"broken\" not found\n",
    );
    // An unknown field is refused under kubectl's default strict validation.
    let sa = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: builder\nautomount: false\n";
    s.kubectl_stdin(&["create", "-f", "-"], sa).stderr_is(
        "Error from server (BadRequest): error when creating \"STDIN\": ServiceAccount in version \"v1\" cannot be handled as a ServiceAccount: strict decoding error: unknown field \"automount\"\n",
    );
}

#[test]
fn explain_and_discovery_know_the_new_kinds() {
    let s = server();
    let out = s.kubectl(&["explain", "role.rules"]).ok();
    let head: Vec<&str> = out.lines().take(9).collect();
    assert_eq!(
        head,
        [
            "GROUP:      rbac.authorization.k8s.io",
            "KIND:       Role",
            "VERSION:    v1",
            "",
            "FIELD: rules <[]PolicyRule>",
            "",
            "",
            "DESCRIPTION:",
            "    Rules holds all the PolicyRules for this Role",
        ],
        "{out}"
    );
    assert!(out.contains("  nonResourceURLs\t<[]string>"), "{out}");
    let out = s.kubectl(&["explain", "sa.secrets"]).ok();
    assert!(
        out.starts_with("KIND:       ServiceAccount\nVERSION:    v1\n\nFIELD: secrets <[]ObjectReference>"),
        "{out}"
    );
    let out = s.kubectl(&["explain", "clusterrolebinding.roleRef"]).ok();
    assert!(out.contains("FIELD: roleRef <RoleRef>"), "{out}");

    let resources = s.kubectl(&["api-resources", "--no-headers", "-o", "name"]).ok();
    for name in [
        "serviceaccounts",
        "tokenreviews.authentication.k8s.io",
        "selfsubjectreviews.authentication.k8s.io",
        "localsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectrulesreviews.authorization.k8s.io",
        "subjectaccessreviews.authorization.k8s.io",
        "clusterrolebindings.rbac.authorization.k8s.io",
        "clusterroles.rbac.authorization.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
        "roles.rbac.authorization.k8s.io",
    ] {
        assert!(resources.lines().any(|l| l == name), "{name} is discoverable:\n{resources}");
    }
    let legacy = s.kubectl(&["get", "--raw", "/api/v1"]).ok();
    assert!(legacy.contains(r#""name":"serviceaccounts/token","singularName":"","namespaced":true,"group":"authentication.k8s.io","version":"v1","kind":"TokenRequest","verbs":["create"]"#), "{legacy}");
    let group = s.kubectl(&["get", "--raw", "/apis/authorization.k8s.io"]).ok();
    assert!(
        group.contains(r#""preferredVersion":{"groupVersion":"authorization.k8s.io/v1","version":"v1"}"#),
        "{group}"
    );
}

/// The next watch event, failing the test if none comes within 10 s.
async fn next_event<S: futures::Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("an event in time")
}

#[tokio::test]
async fn kube_rs_watches_role_bindings_and_cannot_change_their_role() {
    let s = server();
    let client = s.client().await;
    let api: Api<RoleBinding> = Api::namespaced(client, "default");
    let binding = RoleBinding {
        metadata: ObjectMeta { name: Some("readers".into()), ..Default::default() },
        role_ref: RoleRef { api_group: String::new(), kind: "ClusterRole".into(), name: "view".into() },
        subjects: Some(vec![Subject { kind: "User".into(), name: "alice".into(), api_group: None, namespace: None }]),
    };
    let mut stream = api.watch(&WatchParams::default(), "0").await.expect("watch").boxed();
    let created = api.create(&PostParams::default(), &binding).await.expect("create");
    assert_eq!(created.role_ref.api_group, "rbac.authorization.k8s.io", "defaulted");
    match next_event(&mut stream).await {
        Some(Ok(WatchEvent::Added(b))) => assert_eq!(b.metadata.name.as_deref(), Some("readers")),
        other => panic!("expected ADDED readers, got {other:?}"),
    }

    let patch = serde_json::json!({"subjects": [{"kind": "Group", "name": "devs"}]});
    let patched = api.patch("readers", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch");
    assert_eq!(patched.subjects.as_ref().unwrap()[0].api_group.as_deref(), Some("rbac.authorization.k8s.io"));
    match next_event(&mut stream).await {
        Some(Ok(WatchEvent::Modified(b))) => assert_eq!(b.subjects.unwrap()[0].name, "devs"),
        other => panic!("expected MODIFIED readers, got {other:?}"),
    }

    let mut changed = patched.clone();
    changed.role_ref.name = "edit".into();
    match api.replace("readers", &PostParams::default(), &changed).await.expect_err("roleRef is immutable") {
        kube::Error::Api(status) => {
            assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
            assert_eq!(
                status.message,
                "RoleBinding.rbac.authorization.k8s.io \"readers\" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef"
            );
        }
        other => panic!("{other:?}"),
    }

    api.delete("readers", &Default::default()).await.expect("delete");
    match next_event(&mut stream).await {
        Some(Ok(WatchEvent::Deleted(b))) => assert_eq!(b.metadata.name.as_deref(), Some("readers")),
        other => panic!("expected DELETED readers, got {other:?}"),
    }
}
