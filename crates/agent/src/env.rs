//! A container's environment, as the kubelet's `makeEnvironmentVariables` builds it.
//!
//! `envFrom` sources first, in order (a later source overrides an earlier one), then `env` in
//! order, each overriding what came before: literal values with `$(VAR)` expanded against the
//! variables defined so far, `secretKeyRef`, and the pod fields a process outside Kubernetes
//! can know. Pure: the Secrets are passed in, read by the caller.
//!
//! Architecture invariant: no error and no log line holds a value; variables, Secrets and keys
//! are named, never their contents.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, ObjectFieldSelector, Pod};
use strongroom_api::SecretBytes;
use strongroom_api::field::go_quote;

use crate::volume::{SecretData, containers, pod_namespace};

/// A container's environment, ready to pass to a process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedEnv {
    /// Names and values, in the order each name was first defined (`envFrom` sources in
    /// order, each Secret's keys sorted, then `env` in order); a later definition of a name
    /// replaces the value in place.
    pub vars: Vec<(String, SecretBytes)>,
    /// `envFrom` keys skipped because, with the prefix, they are not valid variable names:
    /// (Secret name, the name as it would have been, prefix included). The caller reports
    /// them with an Event of reason `InvalidEnvironmentVariableNames`.
    pub invalid_names: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("pod has no container {}", go_quote(container))]
    ContainerNotFound { container: String },
    /// The kubelet's wording for a missing non-optional Secret.
    #[error("secret {} not found", go_quote(name))]
    SecretNotFound { namespace: String, name: String },
    /// The kubelet's wording for a missing non-optional key.
    #[error("couldn't find key {key} in Secret {namespace}/{secret}")]
    KeyNotFound { namespace: String, secret: String, key: String },
    /// `variable` is the variable's name, or `envFrom[i]` for a whole source.
    #[error("environment variable {}: {what} is not supported by the agent", go_quote(variable))]
    Unsupported { variable: String, what: String },
    /// A process's environment cannot carry NUL: refused rather than truncated.
    #[error("environment variable {}: the value contains a NUL byte", go_quote(variable))]
    NulInValue { variable: String },
    /// An `env[].name` that cannot be passed to a process.
    #[error("invalid environment variable name {}: {reason}", go_quote(variable))]
    InvalidName { variable: String, reason: String },
}

/// The kubelet's `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`, and not `.`, `..` or `..…`.
pub fn is_env_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'.' | b'_'));
    first_ok
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && name != "."
        && !name.starts_with("..")
}

/// Variables in definition order, a redefinition replacing the value in place.
#[derive(Default)]
struct OrderedEnv {
    vars: Vec<(String, SecretBytes)>,
    index: BTreeMap<String, usize>,
}

impl OrderedEnv {
    fn set(&mut self, name: &str, value: SecretBytes) {
        match self.index.get(name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.to_string(), self.vars.len());
                self.vars.push((name.to_string(), value));
            }
        }
    }

    fn get(&self, name: &str) -> Option<&SecretBytes> {
        self.index.get(name).map(|&i| &self.vars[i].1)
    }
}

/// The kubelet's `expansion.Expand` with the variables defined so far: `$(NAME)` becomes the
/// value of `NAME`, or stays as written when `NAME` is not defined; `$$` is a literal `$`; a
/// `$` before anything else, or an unclosed `$(`, is kept.
///
/// Bytes are copied as they are (Go's version re-encodes the byte after a lone `$` as a
/// Latin-1 rune, which mangles non-ASCII text; that is not reproduced).
fn expand(input: &str, env: &OrderedEnv) -> Vec<u8> {
    let input = input.as_bytes();
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] != b'$' || i + 1 == input.len() {
            out.push(input[i]);
            i += 1;
            continue;
        }
        match input[i + 1] {
            b'$' => {
                out.push(b'$');
                i += 2;
            }
            b'(' => match input[i + 2..].iter().position(|&b| b == b')') {
                Some(len) => {
                    let name = &input[i + 2..i + 2 + len];
                    match std::str::from_utf8(name).ok().and_then(|n| env.get(n)) {
                        Some(value) => out.extend_from_slice(value.expose()),
                        None => out.extend_from_slice(&input[i..i + 3 + len]),
                    }
                    i += 3 + len;
                }
                None => {
                    out.extend_from_slice(b"$(");
                    i += 2;
                }
            },
            other => {
                out.extend_from_slice(&[b'$', other]);
                i += 2;
            }
        }
    }
    out
}

/// The value of a `fieldRef`: the fields a process outside Kubernetes can know.
fn field_value(var: &str, selector: &ObjectFieldSelector, pod: &Pod, node_name: &str) -> Result<String, EnvError> {
    let unsupported = |what: String| EnvError::Unsupported { variable: var.to_string(), what };
    if let Some(version) = selector.api_version.as_deref().filter(|v| !v.is_empty() && *v != "v1") {
        return Err(unsupported(format!("fieldRef apiVersion {}", go_quote(version))));
    }
    let path = selector.field_path.as_str();
    let meta = &pod.metadata;
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => pod_namespace(pod).to_string(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => node_name.to_string(),
        // The API server's ServiceAccount admission sets `default` on pods it admits; a
        // manifest read from a file gets the same.
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".to_string()),
        _ => {
            // `metadata.labels['key']` and `metadata.annotations['key']`: a missing key is
            // the empty string, as the kubelet's `ExtractFieldPathAsString`.
            let subscript = path.strip_suffix("']").and_then(|p| p.split_once("['"));
            match subscript {
                Some(("metadata.labels", key)) => {
                    meta.labels.as_ref().and_then(|l| l.get(key)).cloned().unwrap_or_default()
                }
                Some(("metadata.annotations", key)) => {
                    meta.annotations.as_ref().and_then(|a| a.get(key)).cloned().unwrap_or_default()
                }
                _ => return Err(unsupported(format!("fieldRef {}", go_quote(path)))),
            }
        }
    };
    Ok(value)
}

/// Refuses an `env[].name` a process environment cannot hold (empty, `=` or NUL). The API
/// server would refuse these; a manifest read from a file has not been through it.
fn check_name(var: &EnvVar) -> Result<(), EnvError> {
    let reason = if var.name.is_empty() {
        Some("must not be empty")
    } else if var.name.contains('=') {
        Some("must not contain '='")
    } else if var.name.contains('\0') {
        Some("must not contain a NUL byte")
    } else {
        None
    };
    match reason {
        Some(r) => Err(EnvError::InvalidName { variable: var.name.clone(), reason: r.to_string() }),
        None => Ok(()),
    }
}

/// The environment of `container` in `pod` (init, regular or ephemeral container).
///
/// `secrets` holds the Secrets of the pod's namespace the agent has read, by name; a name
/// missing from it does not exist. `node_name` is `spec.nodeName` for `fieldRef`s.
pub fn container_env(
    pod: &Pod,
    container: &str,
    node_name: &str,
    secrets: &BTreeMap<String, SecretData>,
) -> Result<ResolvedEnv, EnvError> {
    let namespace = pod_namespace(pod);
    let all = containers(pod);
    let c = all
        .iter()
        .find(|c| c.name == container)
        .ok_or_else(|| EnvError::ContainerNotFound { container: container.to_string() })?;
    let mut env = OrderedEnv::default();
    let mut invalid_names = Vec::new();

    for (i, from) in c.env_from.iter().enumerate() {
        let Some(source) = &from.secret_ref else {
            let what = if from.config_map_ref.is_some() { "configMapRef" } else { "a source without secretRef" };
            return Err(EnvError::Unsupported { variable: format!("envFrom[{i}]"), what: what.to_string() });
        };
        let Some(secret) = secrets.get(&source.name) else {
            if source.optional.unwrap_or(false) {
                continue;
            }
            return Err(EnvError::SecretNotFound { namespace: namespace.to_string(), name: source.name.clone() });
        };
        let prefix = from.prefix.as_deref().unwrap_or("");
        for (key, value) in &secret.data {
            let name = format!("{prefix}{key}");
            if !is_env_var_name(&name) {
                invalid_names.push((source.name.clone(), name));
                continue;
            }
            env.set(&name, value.clone());
        }
    }

    for var in c.env {
        check_name(var)?;
        let literal = var.value.as_deref().unwrap_or("");
        let value = if !literal.is_empty() {
            SecretBytes::new(expand(literal, &env))
        } else if let Some(from) = &var.value_from {
            if let Some(selector) = &from.secret_key_ref {
                let optional = selector.optional.unwrap_or(false);
                let Some(secret) = secrets.get(&selector.name) else {
                    if optional {
                        continue;
                    }
                    return Err(EnvError::SecretNotFound {
                        namespace: namespace.to_string(),
                        name: selector.name.clone(),
                    });
                };
                match secret.data.get(&selector.key) {
                    Some(value) => value.clone(),
                    None if optional => continue,
                    None => {
                        return Err(EnvError::KeyNotFound {
                            namespace: namespace.to_string(),
                            secret: selector.name.clone(),
                            key: selector.key.clone(),
                        });
                    }
                }
            } else if let Some(selector) = &from.field_ref {
                SecretBytes::new(field_value(&var.name, selector, pod, node_name)?.into_bytes())
            } else {
                let what = if from.config_map_key_ref.is_some() {
                    "configMapKeyRef"
                } else if from.resource_field_ref.is_some() {
                    "resourceFieldRef"
                } else {
                    "an empty valueFrom"
                };
                return Err(EnvError::Unsupported { variable: var.name.clone(), what: what.to_string() });
            }
        } else {
            SecretBytes::default()
        };
        env.set(&var.name, value);
    }

    // Only what reaches the process is checked: a value overridden later never does.
    if let Some((name, _)) = env.vars.iter().find(|(_, v)| v.expose().contains(&0)) {
        return Err(EnvError::NulInValue { variable: name.clone() });
    }
    Ok(ResolvedEnv { vars: env.vars, invalid_names })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml_ng::from_str(yaml).expect("test pod parses")
    }

    fn secret(name: &str, data: &[(&str, &[u8])]) -> SecretData {
        SecretData {
            name: name.to_string(),
            resource_version: "1".to_string(),
            type_: "Opaque".to_string(),
            immutable: false,
            data: data.iter().map(|(k, v)| (k.to_string(), SecretBytes::new(v.to_vec()))).collect(),
        }
    }

    fn secrets(list: Vec<SecretData>) -> BTreeMap<String, SecretData> {
        list.into_iter().map(|s| (s.name.clone(), s)).collect()
    }

    fn vars(env: &ResolvedEnv) -> Vec<(String, String)> {
        env.vars.iter().map(|(k, v)| (k.clone(), String::from_utf8(v.expose().to_vec()).unwrap())).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn with_env(env: &str) -> Pod {
        pod(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: app, namespace: prod}}\nspec:\n  containers:\n  - name: main\n{env}"
        ))
    }

    #[test]
    fn secret_key_ref_and_env_from_with_prefix() {
        // K1: one key as one variable, all keys through envFrom with a prefix.
        let p = with_env(
            r#"    envFrom: [{secretRef: {name: db}, prefix: DB_}]
    env: [{name: PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}]
"#,
        );
        let known = secrets(vec![secret("db", &[("password", b"p4ss"), ("user", b"admin")])]);
        let env = container_env(&p, "main", "node-1", &known).unwrap();
        assert_eq!(vars(&env), pairs(&[("DB_password", "p4ss"), ("DB_user", "admin"), ("PASSWORD", "p4ss")]));
        assert!(env.invalid_names.is_empty());
    }

    #[test]
    fn later_sources_override_earlier_and_env_overrides_env_from() {
        let p = with_env(
            r#"    envFrom: [{secretRef: {name: a}}, {secretRef: {name: b}}]
    env:
    - {name: SHARED, value: from-env}
    - {name: ONLY_ENV, value: x}
    - {name: ONLY_ENV, value: y}
"#,
        );
        let known = secrets(vec![
            secret("a", &[("SHARED", b"from-a"), ("A", b"a")]),
            secret("b", &[("SHARED", b"from-b"), ("A", b"b-wins")]),
        ]);
        let env = container_env(&p, "main", "n", &known).unwrap();
        // Positions are those of first definition; values are the last.
        assert_eq!(vars(&env), pairs(&[("A", "b-wins"), ("SHARED", "from-env"), ("ONLY_ENV", "y")]));
    }

    #[test]
    fn expansion_uses_variables_defined_so_far() {
        let p = with_env(
            r#"    envFrom: [{secretRef: {name: db}}]
    env:
    - {name: HOST, value: db.local}
    - {name: URL, value: "postgres://$(USER)@$(HOST)/$(LATER)"}
    - {name: LATER, value: late}
    - {name: ESCAPED, value: "$$(HOST) costs $$5 and $x, $(unclosed"}
    - {name: TRAILING, value: "ends with $"}
    - {name: SELF, value: "$(SELF)-again"}
"#,
        );
        let known = secrets(vec![secret("db", &[("USER", b"admin")])]);
        let env = container_env(&p, "main", "n", &known).unwrap();
        assert_eq!(
            vars(&env),
            pairs(&[
                ("USER", "admin"),
                ("HOST", "db.local"),
                // A reference to a variable defined later stays as written, as in Kubernetes.
                ("URL", "postgres://admin@db.local/$(LATER)"),
                ("LATER", "late"),
                ("ESCAPED", "$(HOST) costs $5 and $x, $(unclosed"),
                ("TRAILING", "ends with $"),
                ("SELF", "$(SELF)-again"),
            ])
        );
    }

    #[test]
    fn expansion_copies_non_ascii_unchanged() {
        let env = OrderedEnv::default();
        assert_eq!(expand("prix: $é €", &env), "prix: $é €".as_bytes());
    }

    #[test]
    fn invalid_names_are_skipped_and_reported() {
        let p = with_env("    envFrom: [{secretRef: {name: mixed}}, {secretRef: {name: mixed}, prefix: P_}]\n");
        let known = secrets(vec![secret(
            "mixed",
            &[("1abc", b"1"), ("a.b", b"2"), ("a-b", b"3"), ("..x", b"4"), ("GOOD", b"5"), ("_ok", b"6")],
        )]);
        let env = container_env(&p, "main", "n", &known).unwrap();
        // IsEnvVarName allows `.` and `-`; a leading digit or `..` is refused, unless a prefix
        // makes the name valid.
        assert_eq!(
            vars(&env),
            pairs(&[
                ("GOOD", "5"),
                ("_ok", "6"),
                ("a-b", "3"),
                ("a.b", "2"),
                ("P_..x", "4"),
                ("P_1abc", "1"),
                ("P_GOOD", "5"),
                ("P__ok", "6"),
                ("P_a-b", "3"),
                ("P_a.b", "2"),
            ])
        );
        assert_eq!(
            env.invalid_names,
            vec![("mixed".to_string(), "..x".to_string()), ("mixed".to_string(), "1abc".to_string())]
        );
    }

    #[test]
    fn is_env_var_name_as_the_kubelet() {
        for ok in ["A", "a.b", "a-b", "_x", "-x", ".x", "MY_ENV.NAME", "x..y"] {
            assert!(is_env_var_name(ok), "{ok}");
        }
        for bad in ["", "1abc", ".", "..", "..x", "a b", "a=b", "é", "a\0"] {
            assert!(!is_env_var_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn optional_secrets_and_keys() {
        let p = with_env(
            r#"    envFrom: [{secretRef: {name: gone, optional: true}}]
    env:
    - {name: KEEP, value: kept}
    - {name: KEEP, valueFrom: {secretKeyRef: {name: gone, key: k, optional: true}}}
    - {name: NO_KEY, valueFrom: {secretKeyRef: {name: db, key: absent, optional: true}}}
    - {name: EMPTY}
"#,
        );
        let known = secrets(vec![secret("db", &[("k", b"v")])]);
        let env = container_env(&p, "main", "n", &known).unwrap();
        // A skipped optional reference leaves an earlier value in place and defines nothing.
        assert_eq!(vars(&env), pairs(&[("KEEP", "kept"), ("EMPTY", "")]));
    }

    #[test]
    fn missing_non_optional_secret_or_key_fails() {
        // K10: the process is not started.
        let from = with_env("    envFrom: [{secretRef: {name: gone}}]\n");
        let err = container_env(&from, "main", "n", &BTreeMap::new()).unwrap_err();
        assert_eq!(err, EnvError::SecretNotFound { namespace: "prod".to_string(), name: "gone".to_string() });
        assert_eq!(err.to_string(), r#"secret "gone" not found"#);

        let key_ref = with_env("    env: [{name: X, valueFrom: {secretKeyRef: {name: gone, key: k}}}]\n");
        let err = container_env(&key_ref, "main", "n", &BTreeMap::new()).unwrap_err();
        assert_eq!(err.to_string(), r#"secret "gone" not found"#);

        let known = secrets(vec![secret("db", &[("k", b"v")])]);
        let key_ref = with_env("    env: [{name: X, valueFrom: {secretKeyRef: {name: db, key: absent}}}]\n");
        let err = container_env(&key_ref, "main", "n", &known).unwrap_err();
        assert_eq!(err.to_string(), "couldn't find key absent in Secret prod/db");
    }

    #[test]
    fn only_the_named_secret_is_used() {
        // K6: another Secret holding the key never stands in for the named one.
        let p = with_env("    env: [{name: X, valueFrom: {secretKeyRef: {name: db, key: k}}}]\n");
        let known = secrets(vec![secret("db-copy", &[("k", b"other")])]);
        assert_eq!(container_env(&p, "main", "n", &known).unwrap_err().to_string(), r#"secret "db" not found"#);
    }

    #[test]
    fn field_refs() {
        let p = pod(r#"
metadata:
  name: app
  uid: 1234-abcd
  labels: {tier: web}
  annotations: {example.com/owner: team-a}
spec:
  serviceAccountName: api
  containers:
  - name: main
    env:
    - {name: NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace, apiVersion: v1}}}
    - {name: UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
    - {name: TIER, valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}}
    - {name: OWNER, valueFrom: {fieldRef: {fieldPath: "metadata.annotations['example.com/owner']"}}}
    - {name: MISSING, valueFrom: {fieldRef: {fieldPath: "metadata.labels['none']"}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
"#);
        let env = container_env(&p, "main", "node-7", &BTreeMap::new()).unwrap();
        assert_eq!(
            vars(&env),
            pairs(&[
                ("NAME", "app"),
                ("NS", "default"),
                ("UID", "1234-abcd"),
                ("TIER", "web"),
                ("OWNER", "team-a"),
                ("MISSING", ""),
                ("NODE", "node-7"),
                ("SA", "api"),
            ])
        );
    }

    #[test]
    fn unsupported_sources_name_the_variable() {
        let cases = [
            (
                "    env: [{name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]\n",
                r#"environment variable "IP": fieldRef "status.podIP" is not supported by the agent"#,
            ),
            (
                "    env: [{name: CM, valueFrom: {configMapKeyRef: {name: c, key: k}}}]\n",
                r#"environment variable "CM": configMapKeyRef is not supported by the agent"#,
            ),
            (
                "    env: [{name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}]\n",
                r#"environment variable "CPU": resourceFieldRef is not supported by the agent"#,
            ),
            (
                "    envFrom: [{configMapRef: {name: c}}]\n",
                r#"environment variable "envFrom[0]": configMapRef is not supported by the agent"#,
            ),
        ];
        for (env, message) in cases {
            let err = container_env(&with_env(env), "main", "n", &BTreeMap::new()).unwrap_err();
            assert!(matches!(err, EnvError::Unsupported { .. }), "{err:?}");
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn nul_in_a_value_is_refused_without_showing_it() {
        let known = secrets(vec![secret("db", &[("k", b"canary\0tail")])]);
        let p = with_env("    env: [{name: X, valueFrom: {secretKeyRef: {name: db, key: k}}}]\n");
        let err = container_env(&p, "main", "n", &known).unwrap_err();
        assert_eq!(err, EnvError::NulInValue { variable: "X".to_string() });
        assert_eq!(err.to_string(), r#"environment variable "X": the value contains a NUL byte"#);
        assert!(!format!("{err:?}").contains("canary"));

        // Through envFrom, and carried by expansion into another variable.
        let p = with_env("    envFrom: [{secretRef: {name: db}}]\n    env: [{name: k, value: overridden}]\n");
        assert!(container_env(&p, "main", "n", &known).is_ok(), "an overridden value never reaches the process");
        let p = with_env("    envFrom: [{secretRef: {name: db}, prefix: P_}]\n");
        assert_eq!(
            container_env(&p, "main", "n", &known).unwrap_err().to_string(),
            r#"environment variable "P_k": the value contains a NUL byte"#
        );
    }

    #[test]
    fn unknown_container_and_bad_names_are_errors() {
        let p = with_env("    env: [{name: A, value: a}]\n");
        let err = container_env(&p, "sidecar", "n", &BTreeMap::new()).unwrap_err();
        assert_eq!(err.to_string(), r#"pod has no container "sidecar""#);
        let p = with_env("    env: [{name: 'A=B', value: a}]\n");
        let err = container_env(&p, "main", "n", &BTreeMap::new()).unwrap_err();
        assert_eq!(err.to_string(), r#"invalid environment variable name "A=B": must not contain '='"#);
    }

    #[test]
    fn init_containers_are_found() {
        let p = pod(r#"
metadata: {name: app}
spec:
  initContainers: [{name: setup, env: [{name: PHASE, value: init}]}]
  containers: [{name: main}]
"#);
        let env = container_env(&p, "setup", "n", &BTreeMap::new()).unwrap();
        assert_eq!(vars(&env), pairs(&[("PHASE", "init")]));
    }
}
