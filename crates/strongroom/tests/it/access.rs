//! Identity and access end to end (issue 3): the real `strongroom` binary driven by the real
//! kubectl as several people — the admin (`system:masters`), users with client certificates from
//! `strongroom admin kubeconfig`, ServiceAccounts with tokens from `kubectl create token`, static
//! tokens and anonymous clients.
//!
//! Every expected line is what kubectl prints against a Kubernetes 1.32 apiserver: Forbidden
//! messages come from the apiserver's authorizer and RBAC escalation checks, `error: …` lines
//! from kubectl itself. Each test is one scenario on one server.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use strongroom_testkit::{Server, eventually, temp_file};

use crate::{server, server_with};

/// What kubectl prints for any 401.
const UNAUTHORIZED: &str = "error: You must be logged in to the server (Unauthorized)\n";

/// The "done when" story: the admin gives alice a kubeconfig that reads one secret and nothing
/// else, with two kubectl commands.
#[test]
fn teammate_reads_one_secret_and_nothing_else() {
    let s = server();
    app_with_secrets(&s);
    let alice = s.user_kubeconfig("alice", &[]);
    s.kubectl(&["create", "role", "read-db", "--verb=get", "--resource=secrets", "--resource-name=db", "-n", "app"])
        .stdout_is("role.rbac.authorization.k8s.io/read-db created\n");
    s.kubectl(&["create", "rolebinding", "alice-read-db", "--role=read-db", "--user=alice", "-n", "app"])
        .stdout_is("rolebinding.rbac.authorization.k8s.io/alice-read-db created\n");

    // What kubectl prints when alice may not `verb` secrets (named or not) in `namespace`.
    let refused =
        |verb: &str, name: Option<&str>, namespace: &str| forbidden("alice", verb, "secrets", name, Some(namespace));
    s.kubectl_as(&alice, &["get", "secret", "db", "-n", "app", "-o", "jsonpath={.data.password}"])
        .stdout_is(&STANDARD.encode("db-value"));
    s.kubectl_as(&alice, &["get", "secret", "other", "-n", "app"]).stderr_is(&refused("get", Some("other"), "app"));
    s.kubectl_as(&alice, &["get", "secrets", "-n", "app"]).stderr_is(&refused("list", None, "app"));
    // `get -w` lists first, and that is where it stops.
    s.kubectl_as(&alice, &["get", "secrets", "-n", "app", "-w", "--request-timeout=5s"])
        .stderr_is(&refused("list", None, "app"));
    // A watch of all secrets is refused by itself too (what a client that skips the list sends).
    let watch_all = ["get", "--raw", "/api/v1/namespaces/app/secrets?watch=true"];
    s.kubectl_as(&alice, &watch_all).stderr_is(&refused("watch", None, "app"));
    // The same name in another namespace, writes to the one she may read, anything else.
    s.kubectl_as(&alice, &["get", "secret", "db", "-n", "other"]).stderr_is(&refused("get", Some("db"), "other"));
    s.kubectl_as(&alice, &["delete", "secret", "db", "-n", "app"]).stderr_is(&refused("delete", Some("db"), "app"));
    s.kubectl_as(&alice, &["get", "namespaces"]).stderr_is(&forbidden("alice", "list", "namespaces", None, None));

    // `get secret db -w` is a GET, then a watch narrowed by fieldSelector=metadata.name=db, which
    // the apiserver authorizes as a watch of `db`: refused by name while she may only get it…
    let run = s.kubectl_as(&alice, &["get", "secret", "db", "-n", "app", "-w"]);
    assert_eq!(run.fails(), refused("watch", Some("db"), "app"), "{}", run.desc);
    let table = cells(&run.stdout());
    assert_eq!(table.get(1).map(|row| &row[..3]), Some(&["db", "Opaque", "1"].map(String::from)[..]), "{table:?}");
    // …and served once she may also watch it, while a watch of all secrets stays refused.
    s.kubectl(&["create", "role", "watch-db", "--verb=watch", "--resource=secrets", "--resource-name=db", "-n", "app"])
        .ok();
    s.kubectl(&["create", "rolebinding", "alice-watch-db", "--role=watch-db", "--user=alice", "-n", "app"]).ok();
    let path = "/api/v1/namespaces/app/secrets";
    let refused_before = logged(&s, "alice", "GET", path, 403);
    let _watch = Background::kubectl(&s, &alice, &["get", "secret", "db", "-n", "app", "-w"]);
    eventually("alice's single-secret watch to be served", Duration::from_secs(30), || {
        (logged(&s, "alice", "GET", path, 200) > 0).then_some(())
    });
    assert_eq!(logged(&s, "alice", "GET", path, 403), refused_before, "a watch was refused:\n{}", s.log_text());
    s.kubectl_as(&alice, &watch_all).stderr_is(&refused("watch", None, "app"));
}

/// `kubectl auth can-i` (SelfSubjectAccessReview), `can-i --as` (impersonated) and the real
/// request agree, case by case, across resourceNames, wildcard verbs, a `*/token` subresource
/// rule and a ClusterRole granted through a RoleBinding.
#[test]
fn can_i_answers_match_real_requests() {
    let s = server();
    app_with_secrets(&s);
    s.kubectl(&["create", "serviceaccount", "app-sa", "-n", "app"]).ok();
    let alice = s.user_kubeconfig("alice", &[]);
    let carol = s.user_kubeconfig("carol", &[]);
    admin(
        &s,
        &[
            &["create", "role", "read-db", "--verb=get", "--resource=secrets", "--resource-name=db", "-n", "app"],
            &["create", "rolebinding", "alice-read-db", "--role=read-db", "--user=alice", "-n", "app"],
            &["create", "role", "sa-all", "--verb=*", "--resource=serviceaccounts", "-n", "app"],
            &["create", "rolebinding", "alice-sa-all", "--role=sa-all", "--user=alice", "-n", "app"],
            &["create", "rolebinding", "alice-tokens", "--role=tokens", "--user=alice", "-n", "app"],
            &["create", "clusterrole", "secret-reader", "--verb=get,list", "--resource=secrets"],
            &["create", "rolebinding", "carol-secrets", "--clusterrole=secret-reader", "--user=carol", "-n", "app"],
        ],
    );
    // Before the `*/token` rule exists, alice's wildcard on serviceaccounts does not reach the
    // token subresource; the binding to the missing Role is named in the reason, as RBAC does.
    s.kubectl_as(&alice, &["create", "token", "app-sa", "-n", "app"]).stderr_is(&format!(
        "error: failed to create token: {}: RBAC: role.rbac.authorization.k8s.io \"tokens\" not found\n",
        forbidden_message("alice", "create", "", "serviceaccounts/token", Some("app-sa"), Some("app"))
    ));
    let tokens_role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: tokens\n  namespace: app\nrules:\n- apiGroups: [\"\"]\n  resources: [\"*/token\"]\n  verbs: [\"create\"]\n";
    s.kubectl_stdin(&["create", "-f", "-"], tokens_role).stdout_is("role.rbac.authorization.k8s.io/tokens created\n");

    struct Case {
        user: &'static str,
        can_i: &'static [&'static str],
        real: &'static [&'static str],
        allowed: bool,
    }
    #[rustfmt::skip]
    let cases = [
        Case { user: "alice", can_i: &["get", "secrets/db", "-n", "app"], real: &["get", "secret", "db", "-n", "app"], allowed: true },
        Case { user: "alice", can_i: &["get", "secrets/other", "-n", "app"], real: &["get", "secret", "other", "-n", "app"], allowed: false },
        Case { user: "alice", can_i: &["list", "secrets", "-n", "app"], real: &["get", "secrets", "-n", "app"], allowed: false },
        Case { user: "alice", can_i: &["get", "secrets/db", "-n", "other"], real: &["get", "secret", "db", "-n", "other"], allowed: false },
        Case { user: "alice", can_i: &["delete", "secrets/db", "-n", "app"], real: &["delete", "secret", "db", "-n", "app"], allowed: false },
        Case { user: "alice", can_i: &["create", "serviceaccounts", "-n", "app"], real: &["create", "serviceaccount", "tmp", "-n", "app"], allowed: true },
        Case { user: "alice", can_i: &["list", "serviceaccounts", "-n", "app"], real: &["get", "serviceaccounts", "-n", "app"], allowed: true },
        Case { user: "alice", can_i: &["delete", "serviceaccounts/tmp", "-n", "app"], real: &["delete", "serviceaccount", "tmp", "-n", "app"], allowed: true },
        Case { user: "alice", can_i: &["list", "serviceaccounts", "-n", "other"], real: &["get", "serviceaccounts", "-n", "other"], allowed: false },
        Case { user: "alice", can_i: &["create", "serviceaccounts/app-sa", "--subresource=token", "-n", "app"], real: &["create", "token", "app-sa", "-n", "app"], allowed: true },
        Case { user: "alice", can_i: &["create", "serviceaccounts/default", "--subresource=token", "-n", "other"], real: &["create", "token", "default", "-n", "other"], allowed: false },
        Case { user: "carol", can_i: &["list", "secrets", "-n", "app"], real: &["get", "secrets", "-n", "app"], allowed: true },
        Case { user: "carol", can_i: &["get", "secrets/other", "-n", "app"], real: &["get", "secret", "other", "-n", "app"], allowed: true },
        Case { user: "carol", can_i: &["list", "secrets", "-n", "other"], real: &["get", "secrets", "-n", "other"], allowed: false },
        Case { user: "carol", can_i: &["list", "secrets", "--all-namespaces"], real: &["get", "secrets", "--all-namespaces"], allowed: false },
        Case { user: "carol", can_i: &["list", "clusterroles"], real: &["get", "clusterroles"], allowed: false },
    ];
    for case in &cases {
        let kubeconfig = if case.user == "alice" { &alice } else { &carol };
        let answer = if case.allowed { "yes\n" } else { "no\n" };
        let mut can_i = vec!["auth", "can-i"];
        can_i.extend_from_slice(case.can_i);
        let own = s.kubectl_as(kubeconfig, &can_i);
        assert_eq!((own.output.status.success(), own.stdout().as_str()), (case.allowed, answer), "{}", own.desc);
        let as_user = format!("--as={}", case.user);
        let mut impersonated = can_i.clone();
        impersonated.push(&as_user);
        let by_admin = s.kubectl(&impersonated);
        assert_eq!(
            (by_admin.output.status.success(), by_admin.stdout().as_str()),
            (case.allowed, answer),
            "{}",
            by_admin.desc
        );
        let real = s.kubectl_as(kubeconfig, case.real);
        if case.allowed {
            real.ok();
        } else {
            assert!(real.fails().contains("(Forbidden)") || real.stderr().contains(" is forbidden: "), "{}", real.desc);
        }
    }
    // The cluster-wide refusal, word for word.
    s.kubectl_as(&carol, &["get", "secrets", "--all-namespaces"])
        .stderr_is(&forbidden("carol", "list", "secrets", None, None));

    // `can-i --list` (SelfSubjectRulesReview) shows what alice holds in `app`.
    let list = s.kubectl_as(&alice, &["auth", "can-i", "--list", "-n", "app"]).ok();
    let rows = cells(&list);
    assert_eq!(rows[0], ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"], "{list}");
    for expected in [
        &["secrets", "[]", "[db]", "[get]"][..],
        &["serviceaccounts", "[]", "[]", "[*]"],
        &["*/token", "[]", "[]", "[create]"],
        &["selfsubjectaccessreviews.authorization.k8s.io", "[]", "[]", "[create]"],
        &["selfsubjectrulesreviews.authorization.k8s.io", "[]", "[]", "[create]"],
        &["selfsubjectreviews.authentication.k8s.io", "[]", "[]", "[create]"],
        &["[/version]", "[]", "[get]"],
        &["[/api/*]", "[]", "[get]"],
    ] {
        assert!(rows.iter().any(|r| r == expected), "no row {expected:?} in\n{list}");
    }
    assert!(
        !rows.iter().any(|r| r[0] == "secrets" && r[2] == "[]"),
        "alice holds no unrestricted secrets rule:\n{list}"
    );
    // In another namespace she holds only what everyone holds.
    let other = s.kubectl_as(&alice, &["auth", "can-i", "--list", "-n", "other"]).ok();
    assert!(!other.contains("secrets") && !other.contains("serviceaccounts ") && !other.contains("*/token"), "{other}");
    // Rules are always asked for in a namespace, as kube-apiserver requires.
    let (_dir, file) = temp_file(
        "ssrr.json",
        br#"{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectRulesReview","spec":{}}"#,
    );
    let path = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews";
    s.kubectl_as(&alice, &["create", "--raw", path, "-f", file.to_str().unwrap()])
        .stderr_is("Error from server (BadRequest): no namespace on request\n");
}

/// `kubectl auth whoami` (SelfSubjectReview) for a certificate user and for a ServiceAccount
/// token.
#[test]
fn whoami_for_a_certificate_user_and_a_service_account() {
    let s = server();
    s.kubectl(&["create", "namespace", "app"]).ok();
    let alice = s.user_kubeconfig("alice", &["devs"]);
    let me = whoami(&s, &alice);
    assert_eq!(me.get("Username").map(String::as_str), Some("alice"), "{me:?}");
    assert_eq!(me.get("Groups").map(String::as_str), Some("[devs system:authenticated]"), "{me:?}");
    assert_eq!(me.get("UID"), None, "certificates carry no UID: {me:?}");

    s.kubectl(&["create", "serviceaccount", "app-sa", "-n", "app"]).stdout_is("serviceaccount/app-sa created\n");
    let uid = s.kubectl(&["get", "serviceaccount", "app-sa", "-n", "app", "-o", "jsonpath={.metadata.uid}"]).ok();
    let token = s.kubectl(&["create", "token", "app-sa", "-n", "app"]).ok();
    let sa = whoami(&s, &s.token_kubeconfig("app-sa", &token));
    assert_eq!(sa.get("Username").map(String::as_str), Some("system:serviceaccount:app:app-sa"), "{sa:?}");
    assert_eq!(sa.get("UID"), Some(&uid), "{sa:?}");
    assert_eq!(
        sa.get("Groups").map(String::as_str),
        Some("[system:serviceaccounts system:serviceaccounts:app system:authenticated]"),
        "{sa:?}"
    );
    // The admin is who the admin kubeconfig says.
    let admin = whoami(&s, &s.kubeconfig());
    assert_eq!(admin.get("Username").map(String::as_str), Some("strongroom-admin"), "{admin:?}");
    assert_eq!(admin.get("Groups").map(String::as_str), Some("[system:masters system:authenticated]"), "{admin:?}");
}

/// `strongroom admin kubeconfig --group A --group B` puts both groups in the certificate (one O
/// each), and both reach RBAC.
#[test]
fn a_kubeconfig_with_several_groups() {
    let s = server();
    let alice = s.user_kubeconfig("alice", &["devs", "qa"]);
    let me = whoami(&s, &alice);
    assert_eq!(me.get("Groups").map(String::as_str), Some("[devs qa system:authenticated]"), "{me:?}");
    s.kubectl(&["create", "namespace", "app"]).ok();
    s.kubectl(&["create", "rolebinding", "devs-view", "--clusterrole=view", "--group=devs", "-n", "app"]).ok();
    s.kubectl_as(&alice, &["get", "serviceaccounts", "-n", "app", "-o", "name"]).ok();
}

/// `kubectl create token` output used with `kubectl --token` and in a kubeconfig; lifetimes and
/// audiences as Kubernetes checks them.
#[test]
fn create_token_is_used_with_kubectl_and_checked_for_lifetime_and_audience() {
    let s = server();
    app_with_secrets(&s);
    admin(
        &s,
        &[
            &["create", "serviceaccount", "app-sa", "-n", "app"],
            &["create", "role", "read-db", "--verb=get", "--resource=secrets", "--resource-name=db", "-n", "app"],
            &["create", "rolebinding", "sa-read-db", "--role=read-db", "--serviceaccount=app:app-sa", "-n", "app"],
        ],
    );
    // kubectl prints the token without a newline when stdout is not a terminal.
    let token = s.kubectl(&["create", "token", "app-sa", "-n", "app"]).ok();
    assert_eq!(token.split('.').count(), 3, "a JWT: {} characters", token.len());
    let header: Value = serde_json::from_slice(&b64url_decode(token.split('.').next().unwrap_or_default())).unwrap();
    assert_eq!(header["alg"], "ES256", "{header}");

    // `--token` on a kubeconfig that has a wrong token replaces it.
    let wrong = s.token_kubeconfig("wrong", "not-a-token");
    s.kubectl_as(&wrong, &["get", "secret", "db", "-n", "app"]).stderr_is(UNAUTHORIZED);
    let flag = format!("--token={token}");
    s.kubectl_as(&wrong, &[flag.as_str(), "get", "secret", "db", "-n", "app", "-o", "jsonpath={.data.password}"])
        .stdout_is(&STANDARD.encode("db-value"));
    let kubeconfig = s.token_kubeconfig("app-sa", &token);
    s.kubectl_as(&kubeconfig, &["get", "secret", "db", "-n", "app", "-o", "name"]).stdout_is("secret/db\n");
    let sa = "system:serviceaccount:app:app-sa";
    let refused = forbidden(sa, "get", "secrets", Some("other"), Some("app"));
    s.kubectl_as(&kubeconfig, &["get", "secret", "other", "-n", "app"]).stderr_is(&refused);

    // Lifetimes: 10 minutes to 2^32 seconds; the granted expiry is the requested one.
    // (The exact line is checked by `token_lifetimes_out_of_range_are_invalid`.)
    let short = s.kubectl(&["create", "token", "app-sa", "-n", "app", "--duration=5m"]).fails();
    assert!(short.contains("Invalid value: 300: may not specify a duration less than 10 minutes"), "{short}");
    let ten = s.kubectl(&["create", "token", "app-sa", "-n", "app", "--duration=10m"]).ok();
    let claims = jwt_claims(&ten);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600, "{claims}");
    assert_eq!(claims["sub"], "system:serviceaccount:app:app-sa", "{claims}");
    assert_eq!(claims["kubernetes.io"]["namespace"], "app", "{claims}");
    let default = jwt_claims(&token);
    assert_eq!(default["exp"].as_i64().unwrap() - default["iat"].as_i64().unwrap(), 3600, "{default}");

    // A token for another audience is not accepted by the API server.
    let vault = s.kubectl(&["create", "token", "app-sa", "-n", "app", "--audience=vault"]).ok();
    assert_eq!(jwt_claims(&vault)["aud"], json!(["vault"]));
    s.kubectl_as(&s.token_kubeconfig("vault", &vault), &["auth", "whoami"]).stderr_is(UNAUTHORIZED);
    // Tokens for a ServiceAccount that does not exist are not issued.
    s.kubectl(&["create", "token", "nobody", "-n", "app"])
        .stderr_is("error: failed to create token: serviceaccounts \"nobody\" not found\n");
}

/// TokenRequest lifetimes outside 10 minutes to 2^32 seconds are refused with Kubernetes' 422,
/// which names no object (kube-apiserver's `NewInvalid(TokenRequest, "", errs)`).
#[test]
fn token_lifetimes_out_of_range_are_invalid() {
    let s = server();
    s.kubectl(&["create", "namespace", "app"]).ok();
    s.kubectl(&["create", "serviceaccount", "app-sa", "-n", "app"]).ok();
    s.kubectl(&["create", "token", "app-sa", "-n", "app", "--duration=5m"]).stderr_is(
        "error: failed to create token: TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: \
         Invalid value: 300: may not specify a duration less than 10 minutes\n",
    );
    s.kubectl(&["create", "token", "app-sa", "-n", "app", "--duration=4294967297s"]).stderr_is(
        "error: failed to create token: TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: \
         Invalid value: 4294967297: may not specify a duration larger than 2^32 seconds\n",
    );
}

/// Deleting a ServiceAccount, or the Secret a token is bound to, revokes its tokens — also when
/// an object with the same name is created again (the token carries the UID).
#[test]
fn deleting_the_service_account_or_bound_secret_revokes_tokens() {
    let s = server();
    app_with_secrets(&s);
    s.kubectl(&["create", "serviceaccount", "app-sa", "-n", "app"]).ok();
    let token = s.kubectl(&["create", "token", "app-sa", "-n", "app"]).ok();
    let kubeconfig = s.token_kubeconfig("app-sa", &token);
    s.kubectl_as(&kubeconfig, &["auth", "whoami"]).ok();

    // Bound to a secret: valid while that secret (that UID) exists.
    s.kubectl(&["create", "secret", "generic", "bound", "-n", "app", "--from-literal=k=v"]).ok();
    let bound = s
        .kubectl(&["create", "token", "app-sa", "-n", "app", "--bound-object-kind=Secret", "--bound-object-name=bound"])
        .ok();
    let claims = jwt_claims(&bound);
    assert_eq!(claims["kubernetes.io"]["secret"]["name"], "bound", "{claims}");
    let bound_kc = s.token_kubeconfig("bound", &bound);
    s.kubectl_as(&bound_kc, &["auth", "whoami"]).ok();
    s.kubectl(&["delete", "secret", "bound", "-n", "app"]).stdout_is("secret \"bound\" deleted\n");
    s.kubectl_as(&bound_kc, &["auth", "whoami"]).stderr_is(UNAUTHORIZED);
    s.kubectl(&["create", "secret", "generic", "bound", "-n", "app", "--from-literal=k=v"]).ok();
    s.kubectl_as(&bound_kc, &["auth", "whoami"]).stderr_is(UNAUTHORIZED);
    s.kubectl(&["create", "token", "app-sa", "-n", "app", "--bound-object-kind=Secret", "--bound-object-name=gone"])
        .stderr_is("error: failed to create token: secrets \"gone\" not found\n");
    // strongroom serves no Pods.
    s.kubectl(&["create", "token", "app-sa", "-n", "app", "--bound-object-kind=Pod", "--bound-object-name=x"])
        .stderr_is("error: failed to create token: pods \"x\" not found\n");

    s.kubectl(&["delete", "serviceaccount", "app-sa", "-n", "app"]).stdout_is("serviceaccount \"app-sa\" deleted\n");
    s.kubectl_as(&kubeconfig, &["auth", "whoami"]).stderr_is(UNAUTHORIZED);
    s.kubectl(&["create", "serviceaccount", "app-sa", "-n", "app"]).ok();
    s.kubectl_as(&kubeconfig, &["auth", "whoami"]).stderr_is(UNAUTHORIZED);
    // A new token for the new ServiceAccount works.
    let fresh = s.kubectl(&["create", "token", "app-sa", "-n", "app"]).ok();
    s.kubectl_as(&s.token_kubeconfig("fresh", &fresh), &["auth", "whoami"]).ok();
}

/// Tokens the server did not sign as they are get 401: a changed signature, changed claims,
/// `alg: none`, HS256 keyed with the published public key (key confusion), another key's ES256
/// signature with that key embedded, and garbage.
#[test]
fn forged_tokens_are_unauthorized() {
    let s = server();
    admin(
        &s,
        &[
            &["create", "namespace", "app"],
            &["create", "serviceaccount", "app-sa", "-n", "app"],
            &["create", "serviceaccount", "admin-sa", "-n", "app"],
            &[
                "create",
                "clusterrolebinding",
                "admin-sa",
                "--clusterrole=cluster-admin",
                "--serviceaccount=app:admin-sa",
            ],
        ],
    );
    let token = s.kubectl(&["create", "token", "app-sa", "-n", "app"]).ok();
    s.kubectl_as(&s.token_kubeconfig("real", &token), &["auth", "whoami"]).ok();
    let parts: Vec<&str> = token.split('.').collect();
    let (header, payload, signature) = (parts[0], parts[1], parts[2]);
    let kid = serde_json::from_slice::<Value>(&b64url_decode(header)).unwrap()["kid"].clone();

    let mut forged: Vec<(&str, String)> = Vec::new();
    // One signature character changed (in the middle: the last one also holds padding bits).
    let mut sig: Vec<char> = signature.chars().collect();
    sig[10] = if sig[10] == 'A' { 'B' } else { 'A' };
    forged.push(("a changed signature", format!("{header}.{payload}.{}", sig.iter().collect::<String>())));
    // The claims of a cluster-admin ServiceAccount under app-sa's signature.
    let admin_sa_uid = s.kubectl(&["get", "sa", "admin-sa", "-n", "app", "-o", "jsonpath={.metadata.uid}"]).ok();
    let mut claims = jwt_claims(&token);
    claims["sub"] = json!("system:serviceaccount:app:admin-sa");
    claims["kubernetes.io"]["serviceaccount"] = json!({"name": "admin-sa", "uid": admin_sa_uid});
    let admin_payload = b64url(&serde_json::to_vec(&claims).unwrap());
    forged.push(("changed claims", format!("{header}.{admin_payload}.{signature}")));
    // alg none over the real claims, with an empty signature and with the real one, and over
    // the admin's claims.
    let none = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    forged.push(("alg none", format!("{none}.{payload}.")));
    forged.push(("alg none with the signature", format!("{none}.{payload}.{signature}")));
    forged.push(("alg none with admin claims", format!("{none}.{admin_payload}.")));
    // HS256 keyed with the public key as published (JWK JSON, raw point, DER and PEM).
    let jwks: Value = serde_json::from_str(&s.kubectl(&["get", "--raw", "/openid/v1/jwks"]).ok()).unwrap();
    let jwk = jwks["keys"][0].clone();
    assert_eq!((jwk["kty"].as_str(), jwk["crv"].as_str()), (Some("EC"), Some("P-256")), "{jwks}");
    let point = [b64url_decode(jwk["x"].as_str().unwrap()), b64url_decode(jwk["y"].as_str().unwrap())].concat();
    let spki = [p256_spki_prefix(), vec![4], point.clone()].concat();
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(&spki));
    let hs_header = b64url(&serde_json::to_vec(&json!({"alg": "HS256", "typ": "JWT", "kid": kid})).unwrap());
    for (what, key) in [
        ("HS256 keyed with the JWK", serde_json::to_vec(&jwk).unwrap()),
        ("HS256 keyed with the raw point", [vec![4], point.clone()].concat()),
        ("HS256 keyed with the DER public key", spki.clone()),
        ("HS256 keyed with the PEM public key", pem.into_bytes()),
    ] {
        let input = format!("{hs_header}.{admin_payload}");
        forged.push((what, format!("{input}.{}", b64url(&hmac_sha256(&key, input.as_bytes())))));
    }
    // A valid ES256 signature by another key, named by the server's kid and embedded as a jwk.
    let (attacker_jwk, sign) = attacker_key();
    for (what, h) in [
        ("ES256 by another key", json!({"alg": "ES256", "typ": "JWT", "kid": kid})),
        ("ES256 by an embedded jwk", json!({"alg": "ES256", "typ": "JWT", "kid": kid, "jwk": attacker_jwk})),
    ] {
        let input = format!("{}.{admin_payload}", b64url(&serde_json::to_vec(&h).unwrap()));
        forged.push((what, format!("{input}.{}", b64url(&sign(input.as_bytes())))));
    }
    forged.push(("garbage", "garbage".to_string()));
    forged.push(("two dots of garbage", "a.b.c".to_string()));

    for (i, (what, token)) in forged.iter().enumerate() {
        let kubeconfig = s.token_kubeconfig(&format!("forged-{i}"), token);
        let run = s.kubectl_as(&kubeconfig, &["get", "secrets", "-n", "app"]);
        assert_eq!(run.stderr(), UNAUTHORIZED, "{what}: {}\nstdout: {}", run.desc, run.stdout());
    }
    assert!(!s.log_text().contains("user=system:serviceaccount:app:admin-sa"), "a forgery got in:\n{}", s.log_text());
}

/// `--token-auth-file` in Kubernetes' CSV format.
#[test]
fn static_tokens_from_the_token_auth_file() {
    let (_dir, file) = temp_file("tokens.csv", b"tok-abc123,bob,uid-1,\"devs,qa\"\ntok-xyz789,carol,uid-2\n");
    let s = server_with(&["--token-auth-file", file.to_str().unwrap()]);
    let bob = whoami(&s, &s.token_kubeconfig("bob", "tok-abc123"));
    assert_eq!(bob.get("Username").map(String::as_str), Some("bob"), "{bob:?}");
    assert_eq!(bob.get("UID").map(String::as_str), Some("uid-1"), "{bob:?}");
    assert_eq!(bob.get("Groups").map(String::as_str), Some("[devs qa system:authenticated]"), "{bob:?}");
    let carol = whoami(&s, &s.token_kubeconfig("carol", "tok-xyz789"));
    assert_eq!(carol.get("Username").map(String::as_str), Some("carol"), "{carol:?}");
    assert_eq!(carol.get("Groups").map(String::as_str), Some("[system:authenticated]"), "{carol:?}");
    // RBAC applies to static-token users like to any other.
    s.kubectl(&["create", "namespace", "app"]).ok();
    s.kubectl(&["create", "rolebinding", "devs-edit", "--clusterrole=edit", "--group=devs", "-n", "app"]).ok();
    s.kubectl_as(&s.token_kubeconfig("bob", "tok-abc123"), &["create", "secret", "generic", "x", "-n", "app"])
        .stdout_is("secret/x created\n");
    s.kubectl_as(&s.token_kubeconfig("carol", "tok-xyz789"), &["get", "secret", "x", "-n", "app"])
        .stderr_is(&forbidden("carol", "get", "secrets", Some("x"), Some("app")));
    for wrong in ["tok-abc124", "tok-abc123x", "TOK-ABC123", "bob"] {
        s.kubectl_as(&s.token_kubeconfig("wrong", wrong), &["auth", "whoami"]).stderr_is(UNAUTHORIZED);
    }
    // A static token holds no audience: TokenReview finds it valid for the server's audiences
    // only, never for another system's.
    let for_api = token_review(&s, &s.kubeconfig(), "tok-abc123", &[]);
    assert_eq!(for_api["status"]["user"]["username"], "bob", "{for_api}");
    assert_eq!(for_api["status"]["audiences"], json!([s.url()]), "{for_api}");
    let for_vault = token_review(&s, &s.kubeconfig(), "tok-abc123", &["vault"]);
    assert!(for_vault["status"]["user"]["username"].is_null(), "{for_vault}");
}

/// Client certificates: only ones from the server's CA, within their validity, for clientAuth;
/// the others get 401 like any bad credential.
/// A control certificate made the same way but valid is accepted, so the refusals are about what
/// each one changes.
#[test]
fn certificates_from_other_cas_expired_or_without_client_auth_are_rejected() {
    let s = server();
    let ca_cert = std::fs::read_to_string(s.data_dir().join("ca.crt")).unwrap();
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(s.data_dir().join("ca.key")).unwrap()).unwrap();
    let ca = rcgen::Issuer::from_ca_cert_pem(&ca_cert, ca_key).unwrap();

    let valid = client_cert(&ca, "dave", &["devs"], Validity::Current, true);
    let me = whoami(&s, &cert_kubeconfig(&s, "dave", &valid));
    assert_eq!(me.get("Username").map(String::as_str), Some("dave"), "{me:?}");
    assert_eq!(me.get("Groups").map(String::as_str), Some("[devs system:authenticated]"), "{me:?}");

    let sa_token = s.kubectl(&["create", "token", "default"]).ok();
    let foreign_key = rcgen::KeyPair::generate().unwrap();
    let mut foreign_params = rcgen::CertificateParams::default();
    foreign_params.distinguished_name.push(rcgen::DnType::CommonName, "strongroom-ca");
    foreign_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    foreign_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    let foreign = rcgen::Issuer::new(foreign_params, foreign_key);
    for (name, cert) in [
        ("mallory", client_cert(&foreign, "mallory", &["system:masters"], Validity::Current, true)),
        ("expired", client_cert(&ca, "expired", &["system:masters"], Validity::Past, true)),
        ("future", client_cert(&ca, "future", &["system:masters"], Validity::Future, true)),
        ("server-only", client_cert(&ca, "server-only", &["system:masters"], Validity::Current, false)),
        // The CA's own certificate (and key) is no client certificate.
        ("the-ca", (ca_cert.clone(), std::fs::read_to_string(s.data_dir().join("ca.key")).unwrap())),
    ] {
        // As kube-apiserver: the connection is made, and the request is Unauthorized.
        let kubeconfig = cert_kubeconfig(&s, name, &cert);
        s.kubectl_as(&kubeconfig, &["auth", "whoami"]).stderr_is(UNAUTHORIZED);
        assert!(!s.log_text().contains(&format!("user={name} ")), "{name} was authenticated:\n{}", s.log_text());
        // A bearer token on the same request is still tried.
        let with_token = s.kubectl_as(
            &kubeconfig,
            &["--token", &sa_token, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
        );
        assert_eq!(with_token.ok(), "system:serviceaccount:default:default", "{name}");
    }

    // `strongroom admin kubeconfig --ttl 1s`: works, then stops working when it expires.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["admin", "kubeconfig", "--data-dir"])
        .arg(s.data_dir())
        .args(["--user", "brief", "--ttl", "1s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_dir, brief) = temp_file("brief.kubeconfig", &out.stdout);
    eventually("the one-second certificate to expire", Duration::from_secs(30), || {
        let run = s.kubectl_as(&brief, &["auth", "whoami"]);
        (!run.output.status.success()).then_some(())
    });
    s.kubectl_as(&brief, &["auth", "whoami"]).stderr_is(UNAUTHORIZED);
}

/// Escalation prevention: creating a Role needs every permission in it (or `escalate`), a
/// binding needs every permission of its role (or `bind` on it).
#[test]
fn escalation_and_bind_are_prevented() {
    let s = server();
    app_with_secrets(&s);
    let alice = s.user_kubeconfig("alice", &[]);
    let verbs = "--verb=get,list,create,update,patch,delete";
    admin(
        &s,
        &[
            &["create", "role", "rbac-manager", verbs, "--resource=roles,rolebindings", "-n", "app"],
            &["create", "rolebinding", "alice-rbac", "--role=rbac-manager", "--user=alice", "-n", "app"],
        ],
    );
    // kubectl's `create rolebinding` prefixes server errors with its own words; `create role`
    // and `patch` print them as they are.
    let not_held = "is attempting to grant RBAC permissions not currently held:";
    let groups = r#"(groups=["system:authenticated"])"#;

    // What she holds she may grant.
    s.kubectl_as(&alice, &["create", "role", "role-reader", "--verb=get", "--resource=roles", "-n", "app"])
        .stdout_is("role.rbac.authorization.k8s.io/role-reader created\n");
    s.kubectl_as(&alice, &["create", "rolebinding", "bob-reader", "--role=role-reader", "--user=bob", "-n", "app"])
        .stdout_is("rolebinding.rbac.authorization.k8s.io/bob-reader created\n");
    // What she does not, not.
    s.kubectl_as(&alice, &["create", "role", "steal", "--verb=get", "--resource=secrets", "-n", "app"]).stderr_is(&format!(
        "Error from server (Forbidden): roles.rbac.authorization.k8s.io \"steal\" is forbidden: user \"alice\" {groups} \
         {not_held}\n{{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}}\n"
    ));
    let bind_admin = ["create", "rolebinding", "alice-admin", "--clusterrole=admin", "--user=alice", "-n", "app"];
    let err = s.kubectl_as(&alice, &bind_admin).fails();
    let mut lines = err.lines();
    assert_eq!(
        lines.next(),
        Some(
            format!(
                "error: failed to create rolebinding: rolebindings.rbac.authorization.k8s.io \"alice-admin\" is \
                 forbidden: user \"alice\" {groups} {not_held}"
            )
            .as_str()
        ),
        "{err}"
    );
    assert!(
        lines.any(|l| l.starts_with(r#"{APIGroups:[""], Resources:["secrets"], Verbs:["#) && l.contains(r#""get""#)),
        "the missing secrets rule is listed:\n{err}"
    );
    s.kubectl_as(&alice, &["get", "secret", "db", "-n", "app"]).fails();

    // Updates are checked like creates.
    let add_rule =
        r#"[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["secrets"],"verbs":["get"]}}]"#;
    s.kubectl_as(&alice, &["patch", "role", "role-reader", "-n", "app", "--type=json", "-p", add_rule]).stderr_is(
        &format!(
            "Error from server (Forbidden): roles.rbac.authorization.k8s.io \"role-reader\" is forbidden: user \"alice\" \
             {groups} {not_held}\n{{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}}\n"
        ),
    );

    // `escalate` limited by resourceNames covers updates of that role, never a create (which has
    // no name in its request, as kube-apiserver asks).
    admin(
        &s,
        &[
            &[
                "create",
                "role",
                "escalate-named",
                "--verb=escalate",
                "--resource=roles",
                "--resource-name=named",
                "-n",
                "app",
            ],
            &["create", "rolebinding", "alice-escalate-named", "--role=escalate-named", "--user=alice", "-n", "app"],
        ],
    );
    s.kubectl_as(&alice, &["create", "role", "named", "--verb=get", "--resource=secrets", "-n", "app"]).stderr_is(&format!(
        "Error from server (Forbidden): roles.rbac.authorization.k8s.io \"named\" is forbidden: user \"alice\" {groups} \
         {not_held}\n{{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}}\n"
    ));
    s.kubectl_as(&alice, &["create", "role", "named", "--verb=get", "--resource=roles", "-n", "app"]).ok();
    s.kubectl_as(&alice, &["patch", "role", "named", "-n", "app", "--type=json", "-p", add_rule])
        .stdout_is("role.rbac.authorization.k8s.io/named patched\n");

    // `escalate` on roles lets her create a Role with more than she holds, but not bind it.
    s.kubectl(&["create", "role", "escalator", "--verb=escalate", "--resource=roles", "-n", "app"]).ok();
    s.kubectl(&["create", "rolebinding", "alice-escalate", "--role=escalator", "--user=alice", "-n", "app"]).ok();
    s.kubectl_as(&alice, &["create", "role", "steal", "--verb=get", "--resource=secrets", "-n", "app"])
        .stdout_is("role.rbac.authorization.k8s.io/steal created\n");
    s.kubectl_as(&alice, &["create", "rolebinding", "alice-steal", "--role=steal", "--user=alice", "-n", "app"])
        .stderr_is(&format!(
            "error: failed to create rolebinding: rolebindings.rbac.authorization.k8s.io \"alice-steal\" is \
             forbidden: user \"alice\" {groups} {not_held}\n{{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}}\n"
        ));
    // `bind` on the `admin` ClusterRole lets her bind it (and so read secrets). (A Role granting
    // `bind` in `app` only: `bind_can_be_delegated_in_one_namespace`.)
    admin(
        &s,
        &[
            &["create", "clusterrole", "bind-admin", "--verb=bind", "--resource=clusterroles", "--resource-name=admin"],
            &["create", "clusterrolebinding", "alice-bind-admin", "--clusterrole=bind-admin", "--user=alice"],
        ],
    );
    s.kubectl_as(&alice, &["create", "rolebinding", "alice-edit", "--clusterrole=edit", "--user=alice", "-n", "app"])
        .fails();
    s.kubectl_as(&alice, &bind_admin).stdout_is("rolebinding.rbac.authorization.k8s.io/alice-admin created\n");
    s.kubectl_as(&alice, &["get", "secret", "db", "-n", "app", "-o", "name"]).stdout_is("secret/db\n");
    // Only in `app`.
    let refused = forbidden("alice", "get", "secrets", Some("db"), Some("other"));
    s.kubectl_as(&alice, &["get", "secret", "db", "-n", "other"]).stderr_is(&refused);
}

/// A Role may delegate `bind` on a ClusterRole in its own namespace: kube-apiserver checks `bind`
/// in the binding's namespace, also for a ClusterRole reference.
#[test]
fn bind_can_be_delegated_in_one_namespace() {
    let s = server();
    app_with_secrets(&s);
    let alice = s.user_kubeconfig("alice", &[]);
    let bind = ["--verb=bind", "--resource=clusterroles", "--resource-name=admin"];
    admin(
        &s,
        &[
            &["create", "role", "rbac", "--verb=create", "--resource=rolebindings", "-n", "app"],
            &["create", "rolebinding", "alice-rbac", "--role=rbac", "--user=alice", "-n", "app"],
            &["create", "role", "bind-admin", bind[0], bind[1], bind[2], "-n", "app"],
            &["create", "rolebinding", "alice-bind-admin", "--role=bind-admin", "--user=alice", "-n", "app"],
            &["create", "role", "rbac", "--verb=create", "--resource=rolebindings", "-n", "other"],
            &["create", "rolebinding", "alice-rbac", "--role=rbac", "--user=alice", "-n", "other"],
        ],
    );
    let bind_admin_in = |ns| ["create", "rolebinding", "alice-admin", "--clusterrole=admin", "--user=alice", "-n", ns];
    s.kubectl_as(&alice, &bind_admin_in("app"))
        .stdout_is("rolebinding.rbac.authorization.k8s.io/alice-admin created\n");
    s.kubectl_as(&alice, &["get", "secret", "db", "-n", "app", "-o", "name"]).stdout_is("secret/db\n");
    // Not in a namespace where no Role delegates it.
    let err = s.kubectl_as(&alice, &bind_admin_in("other")).fails();
    let refused = "error: failed to create rolebinding: rolebindings.rbac.authorization.k8s.io \"alice-admin\" is \
                   forbidden: user \"alice\"";
    assert!(err.starts_with(refused), "{err}");
}

/// `kubectl --as` / `--as-group` need the `impersonate` verb on users and groups.
#[test]
fn impersonation_needs_the_impersonate_verb() {
    let s = server();
    app_with_secrets(&s);
    let alice = s.user_kubeconfig("alice", &[]);
    // Commands that print the server's Forbidden as is (`auth whoami` replaces it by its own).
    let may_not = |resource: &str, name: &str, namespace: Option<&str>| {
        forbidden("alice", "impersonate", resource, Some(name), namespace)
    };
    s.kubectl_as(&alice, &["--as=bob", "auth", "can-i", "--list"]).stderr_is(&may_not("users", "bob", None));
    s.kubectl_as(&alice, &["--as=bob", "auth", "whoami"]).stderr_is(
        "error: the selfsubjectreviews API is not enabled in the cluster or you do not have permission to call it\n",
    );

    admin(
        &s,
        &[
            &["create", "clusterrole", "as-bob", "--verb=impersonate", "--resource=users", "--resource-name=bob"],
            &["create", "clusterrolebinding", "alice-as-bob", "--clusterrole=as-bob", "--user=alice"],
        ],
    );
    let bob = whoami_args(&s, &alice, &["--as=bob"]);
    assert_eq!(bob.get("Username").map(String::as_str), Some("bob"), "{bob:?}");
    assert_eq!(bob.get("Groups").map(String::as_str), Some("[system:authenticated]"), "{bob:?}");
    s.kubectl_as(&alice, &["--as=carol", "auth", "can-i", "--list"]).stderr_is(&may_not("users", "carol", None));
    // Impersonating bob, alice may do what bob may, not what she may.
    s.kubectl(&["create", "rolebinding", "bob-edit", "--clusterrole=edit", "--user=bob", "-n", "app"]).ok();
    s.kubectl_as(&alice, &["--as=bob", "get", "secret", "db", "-n", "app", "-o", "name"]).stdout_is("secret/db\n");
    // The audit record names both: alice, acting as bob.
    let audit = std::fs::read_to_string(s.data_dir().join("audit.log")).unwrap();
    let read: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["verb"] == "get" && e["objectRef"]["name"] == "db" && e["responseStatus"]["code"] == 200)
        .collect();
    assert_eq!(read.len(), 1, "{audit}");
    assert_eq!(
        (&read[0]["user"]["username"], &read[0]["impersonatedUser"]["username"]),
        (&json!("alice"), &json!("bob"))
    );
    let refused = forbidden("alice", "get", "secrets", Some("db"), Some("app"));
    s.kubectl_as(&alice, &["get", "secret", "db", "-n", "app"]).stderr_is(&refused);

    // Groups need their own grant.
    let as_dev = ["--as=bob", "--as-group=devs", "auth", "can-i", "--list"];
    s.kubectl_as(&alice, &as_dev).stderr_is(&may_not("groups", "devs", None));
    admin(
        &s,
        &[
            &["create", "clusterrole", "as-devs", "--verb=impersonate", "--resource=groups", "--resource-name=devs"],
            &["create", "clusterrolebinding", "alice-as-devs", "--clusterrole=as-devs", "--user=alice"],
        ],
    );
    let bob_dev = whoami_args(&s, &alice, &["--as=bob", "--as-group=devs"]);
    assert_eq!(bob_dev.get("Username").map(String::as_str), Some("bob"), "{bob_dev:?}");
    assert_eq!(bob_dev.get("Groups").map(String::as_str), Some("[devs system:authenticated]"), "{bob_dev:?}");
    // ServiceAccount names need `impersonate` on serviceaccounts, not users.
    s.kubectl_as(&alice, &["--as=system:serviceaccount:app:default", "auth", "can-i", "--list"]).stderr_is(&may_not(
        "serviceaccounts",
        "default",
        Some("app"),
    ));
    // The audit log names both: alice, acting as bob.
    let event = audit_events(&s)
        .into_iter()
        .find(|e| e["impersonatedUser"]["username"] == "bob" && e["objectRef"]["name"] == "db")
        .expect("an audit event for the impersonated read");
    assert_eq!(event["user"]["username"], "alice", "{event}");
}

/// Without `--anonymous-auth` a request without credentials gets 401; with it, it runs as
/// `system:anonymous` and RBAC decides (`/version` is public, secrets are not).
#[tokio::test]
async fn anonymous_requests() {
    let s = server();
    for path in ["/version", "/api", "/api/v1/namespaces/default/secrets"] {
        let r = s.raw("GET", path, &[], b"", false).await;
        assert_eq!(r.status, 401, "{path}: {}", r.body);
        let status: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            (status["reason"].as_str(), status["message"].as_str()),
            (Some("Unauthorized"), Some("Unauthorized"))
        );
    }
    drop(s);

    let s = server_with(&["--anonymous-auth"]);
    let version = s.raw("GET", "/version", &[], b"", false).await;
    assert_eq!(version.status, 200, "{}", version.body);
    assert_eq!(serde_json::from_str::<Value>(&version.body).unwrap()["minor"], "32");
    for (path, message) in [
        (
            "/api/v1/namespaces/default/secrets",
            r#"secrets is forbidden: User "system:anonymous" cannot list resource "secrets" in API group "" in the namespace "default""#,
        ),
        (
            "/api/v1/namespaces/default/secrets/x",
            r#"secrets "x" is forbidden: User "system:anonymous" cannot get resource "secrets" in API group "" in the namespace "default""#,
        ),
        ("/api", r#"forbidden: User "system:anonymous" cannot get path "/api""#),
        ("/openid/v1/jwks", r#"forbidden: User "system:anonymous" cannot get path "/openid/v1/jwks""#),
    ] {
        let r = s.raw("GET", path, &[], b"", false).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        let status: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(status["reason"], "Forbidden", "{path}: {status}");
        assert_eq!(status["message"], message, "{path}");
    }
    // A bad token is still a 401, not anonymous.
    let r = s.raw("GET", "/version", &[("Authorization", "Bearer nope")], b"", false).await;
    assert_eq!(r.status, 401, "{}", r.body);
}

/// The audit log records who read a named secret, and `strongroom audit reads` answers "who
/// read this secret".
#[test]
fn audit_log_records_who_read_a_secret() {
    let s = server();
    app_with_secrets(&s);
    let alice = s.user_kubeconfig("alice", &[]);
    s.kubectl(&["create", "role", "read-db", "--verb=get", "--resource=secrets", "--resource-name=db", "-n", "app"])
        .ok();
    s.kubectl(&["create", "rolebinding", "alice-read-db", "--role=read-db", "--user=alice", "-n", "app"]).ok();
    s.kubectl_as(&alice, &["get", "secret", "db", "-n", "app", "-o", "name"]).stdout_is("secret/db\n");
    s.kubectl_as(&alice, &["get", "secret", "other", "-n", "app"]).fails();
    s.kubectl(&["get", "secrets", "-n", "app"]).ok();
    s.kubectl(&["get", "secret", "other", "-n", "app"]).ok();

    let events = audit_events(&s);
    let read = events
        .iter()
        .find(|e| {
            e["user"]["username"] == "alice"
                && e["verb"] == "get"
                && e["objectRef"]["resource"] == "secrets"
                && e["objectRef"]["namespace"] == "app"
                && e["objectRef"]["name"] == "db"
                && e["responseStatus"]["code"] == 200
        })
        .unwrap_or_else(|| panic!("no audit event for alice's read of app/db in {events:#?}"));
    assert_eq!(read["apiVersion"], "audit.k8s.io/v1", "{read}");
    assert_eq!(read["kind"], "Event", "{read}");
    assert_eq!(read["level"], "Metadata", "{read}");
    assert_eq!(read["sourceIPs"], json!(["127.0.0.1"]), "{read}");
    assert!(read["userAgent"].as_str().is_some_and(|ua| ua.starts_with("kubectl")), "{read}");
    assert_eq!(read["annotations"]["authorization.k8s.io/decision"], "allow", "{read}");
    let refused = events
        .iter()
        .find(|e| e["user"]["username"] == "alice" && e["objectRef"]["name"] == "other")
        .unwrap_or_else(|| panic!("no audit event for alice's refused read in {events:#?}"));
    assert_eq!(refused["responseStatus"]["code"], 403, "{refused}");
    assert_eq!(refused["annotations"]["authorization.k8s.io/decision"], "forbid", "{refused}");
    let log = std::fs::read_to_string(s.data_dir().join("audit.log")).unwrap();
    for value in ["db-value", "other-value", &STANDARD.encode("db-value")] {
        assert!(!log.contains(value), "the audit log holds a secret value");
    }

    // Who could have read app/db: alice's get and the admin's list, not the admin's get of
    // `other` nor alice's refused request.
    let log_path = s.data_dir().join("audit.log");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["audit", "reads", "--log"])
        .arg(&log_path)
        .args(["--namespace", "app", "--secret", "db"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}\n{}", String::from_utf8_lossy(&out.stderr));
    let rows = cells(&table);
    let has = |user: &str, verb: &str| rows.iter().any(|r| r.iter().any(|c| c == user) && r.iter().any(|c| c == verb));
    assert!(has("alice", "get"), "{table}");
    assert!(has("strongroom-admin", "list"), "{table}");
    assert!(!has("strongroom-admin", "get"), "the admin's get of another secret is not a read of db:\n{table}");
    assert_eq!(rows.iter().filter(|r| r.iter().any(|c| c == "alice")).count(), 1, "{table}");
}

/// Audit fails closed: a request that would return secret data is refused (503) when its audit
/// record cannot be written, unless `--audit-fail-open`; requests without secret data are served.
/// The log cannot be written once its directory is gone and it is due for rotation: it starts
/// full (1 MiB with `--audit-log-maxsize 1`), so the first record rotates it.
#[tokio::test]
async fn audit_fails_closed_unless_fail_open() {
    let mut s = server();
    app_with_secrets(&s);
    s.kubectl(&["create", "serviceaccount", "app-sa", "-n", "app"]).ok();
    let (dir, log) = full_audit_log();
    s.restart_with(&["--audit-log-path", log.to_str().unwrap(), "--audit-log-maxsize", "1"]);
    std::fs::remove_dir_all(&dir).unwrap();

    let r = s.raw("GET", "/api/v1/namespaces/app/secrets/db", &[], b"", true).await;
    assert_eq!(r.status, 503, "{}", r.body);
    let status: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (status["reason"].as_str(), status["code"].as_i64()),
        (Some("ServiceUnavailable"), Some(503)),
        "{status}"
    );
    assert!(!r.body.contains(&STANDARD.encode("db-value")), "{}", r.body);
    let run = s.kubectl(&["get", "secret", "db", "-n", "app", "-o", "jsonpath={.data.password}"]);
    assert!(run.fails().starts_with("Error from server (ServiceUnavailable): "), "{}", run.stderr());
    assert_eq!(run.stdout(), "");
    let r = s.raw("GET", "/api/v1/namespaces/app/secrets", &[], b"", true).await;
    assert_eq!(r.status, 503, "a list returns values too: {}", r.body);
    let token = br#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{}}"#;
    let headers = [("Content-Type", "application/json")];
    let r = s.raw("POST", "/api/v1/namespaces/app/serviceaccounts/app-sa/token", &headers, token, true).await;
    assert_eq!(r.status, 503, "a token is secret data: {}", r.body);
    // Nothing secret: served, though not recorded.
    s.kubectl(&["get", "namespace", "app", "-o", "name"]).stdout_is("namespace/app\n");
    s.kubectl(&["create", "namespace", "later"]).stdout_is("namespace/later created\n");

    let (dir, log) = full_audit_log();
    s.restart_with(&["--audit-log-path", log.to_str().unwrap(), "--audit-log-maxsize", "1", "--audit-fail-open"]);
    std::fs::remove_dir_all(&dir).unwrap();
    s.kubectl(&["get", "secret", "db", "-n", "app", "-o", "jsonpath={.data.password}"])
        .stdout_is(&STANDARD.encode("db-value"));
}

/// Every namespace gets a `default` ServiceAccount, and gets it back when it is deleted.
#[test]
fn every_namespace_gets_a_default_service_account() {
    let s = server();
    s.kubectl(&["create", "namespace", "fresh"]).ok();
    let uid = eventually("the default ServiceAccount in a new namespace", Duration::from_secs(30), || {
        let run = s.kubectl(&["get", "serviceaccount", "default", "-n", "fresh", "-o", "jsonpath={.metadata.uid}"]);
        run.output.status.success().then(|| run.stdout())
    });
    s.kubectl(&["delete", "serviceaccount", "default", "-n", "fresh"])
        .stdout_is("serviceaccount \"default\" deleted\n");
    eventually("the default ServiceAccount to come back", Duration::from_secs(30), || {
        let run = s.kubectl(&["get", "serviceaccount", "default", "-n", "fresh", "-o", "jsonpath={.metadata.uid}"]);
        (run.output.status.success() && run.stdout() != uid).then_some(())
    });
    // The system namespaces have theirs too.
    for ns in ["default", "kube-system", "kube-public"] {
        eventually(&format!("the default ServiceAccount in {ns}"), Duration::from_secs(30), || {
            s.kubectl(&["get", "serviceaccount", "default", "-n", ns]).output.status.success().then_some(())
        });
    }
}

/// TokenReview lets other systems check a token: the admin (and anyone bound to
/// `system:auth-delegator`) may ask; a ServiceAccount without that grant may not.
#[test]
fn token_review_validates_tokens() {
    let s = server();
    s.kubectl(&["create", "namespace", "app"]).ok();
    s.kubectl(&["create", "serviceaccount", "app-sa", "-n", "app"]).ok();
    let uid = s.kubectl(&["get", "sa", "app-sa", "-n", "app", "-o", "jsonpath={.metadata.uid}"]).ok();
    let token = s.kubectl(&["create", "token", "app-sa", "-n", "app"]).ok();

    let review = token_review(&s, &s.kubeconfig(), &token, &[]);
    let status = &review["status"];
    assert_eq!(status["authenticated"], true, "{review}");
    assert_eq!(status["user"]["username"], "system:serviceaccount:app:app-sa", "{review}");
    assert_eq!(status["user"]["uid"], uid.as_str(), "{review}");
    assert_eq!(
        status["user"]["groups"],
        json!(["system:serviceaccounts", "system:serviceaccounts:app", "system:authenticated"]),
        "{review}"
    );
    assert_eq!(review["kind"], "TokenReview", "{review}");

    // `authenticated` is omitted when false (`omitempty`), as kube-apiserver writes it.
    let garbage = token_review(&s, &s.kubeconfig(), "garbage", &[]);
    assert!(matches!(garbage["status"]["authenticated"], Value::Null | Value::Bool(false)), "{garbage}");
    assert!(garbage["status"]["user"]["username"].is_null(), "{garbage}");

    // Audiences: a vault token is valid for vault, not for the API server's default audience.
    let vault = s.kubectl(&["create", "token", "app-sa", "-n", "app", "--audience=vault"]).ok();
    let for_vault = token_review(&s, &s.kubeconfig(), &vault, &["vault"]);
    assert_eq!(for_vault["status"]["authenticated"], true, "{for_vault}");
    assert_eq!(for_vault["status"]["audiences"], json!(["vault"]), "{for_vault}");
    let for_api = token_review(&s, &s.kubeconfig(), &vault, &[]);
    assert!(matches!(for_api["status"]["authenticated"], Value::Null | Value::Bool(false)), "{for_api}");
    // `status.audiences` is the intersection of the asked audiences and the token's.
    let two = s.kubectl(&["create", "token", "app-sa", "-n", "app", "--audience=vault", "--audience=nomad"]).ok();
    let asked = token_review(&s, &s.kubeconfig(), &two, &["consul", "nomad"]);
    assert_eq!(asked["status"]["authenticated"], true, "{asked}");
    assert_eq!(asked["status"]["audiences"], json!(["nomad"]), "{asked}");

    // A ServiceAccount may review tokens only with `system:auth-delegator`.
    let sa = s.token_kubeconfig("app-sa", &token);
    let file = token_review_file(&s, &token, &[]);
    let refused = forbidden_message(
        "system:serviceaccount:app:app-sa",
        "create",
        "authentication.k8s.io",
        "tokenreviews",
        None,
        None,
    );
    s.kubectl_as(&sa, &["create", "--validate=false", "-f", file.to_str().unwrap()])
        .stderr_is(&format!("Error from server (Forbidden): error when creating \"{}\": {refused}\n", file.display()));
    let delegator = ["--clusterrole=system:auth-delegator", "--serviceaccount=app:app-sa"];
    admin(&s, &[&["create", "clusterrolebinding", "app-sa-delegator", delegator[0], delegator[1]]]);
    let by_sa = token_review(&s, &sa, &token, &[]);
    assert_eq!(by_sa["status"]["authenticated"], true, "{by_sa}");
}

/// ClusterRole aggregation: a role with an `aggregationRule` gets the rules of every ClusterRole
/// its selector matches, as they come and go; the bootstrap `edit` role holds `view`'s rules.
#[test]
fn cluster_roles_aggregate_by_label() {
    let s = server();
    app_with_secrets(&s);
    let manifest = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: secret-auditor
aggregationRule:
  clusterRoleSelectors:
  - matchLabels:
      example.com/aggregate-to-secret-auditor: "true"
rules: []
"#;
    s.kubectl_stdin(&["apply", "-f", "-"], manifest).ok();
    s.kubectl(&["create", "clusterrolebinding", "bob-auditor", "--clusterrole=secret-auditor", "--user=bob"]).ok();
    let bob = s.user_kubeconfig("bob", &[]);
    let cannot = s.kubectl_as(&bob, &["auth", "can-i", "list", "secrets", "-n", "app"]);
    cannot.fails();
    assert_eq!(cannot.stdout(), "no\n");

    s.kubectl(&["create", "clusterrole", "list-secrets", "--verb=list", "--resource=secrets"]).ok();
    s.kubectl(&["label", "clusterrole", "list-secrets", "example.com/aggregate-to-secret-auditor=true"]).ok();
    let rules = || s.kubectl(&["get", "clusterrole", "secret-auditor", "-o", "jsonpath={.rules}"]).ok();
    eventually("the aggregated rules", Duration::from_secs(10), || rules().contains("list").then_some(()));
    s.kubectl_as(&bob, &["get", "secrets", "-n", "app", "-o", "name"]).stdout_is("secret/db\nsecret/other\n");

    s.kubectl(&["delete", "clusterrole", "list-secrets"]).ok();
    eventually("the rules to go", Duration::from_secs(10), || (!rules().contains("list")).then_some(()));
    let cannot = s.kubectl_as(&bob, &["auth", "can-i", "list", "secrets", "-n", "app"]);
    cannot.fails();
    assert_eq!(cannot.stdout(), "no\n");

    // `edit` aggregates `view` (and `system:aggregate-to-edit`): reading service accounts comes
    // from view, reading secrets from edit.
    s.kubectl(&["create", "rolebinding", "carol-edit", "--clusterrole=edit", "--user=carol", "-n", "app"]).ok();
    let carol = s.user_kubeconfig("carol", &[]);
    s.kubectl_as(&carol, &["get", "serviceaccounts", "-n", "app", "-o", "name"]).ok();
    s.kubectl_as(&carol, &["get", "secret", "db", "-n", "app", "-o", "name"]).stdout_is("secret/db\n");
    s.kubectl_as(&carol, &["get", "secret", "db", "-n", "other"]).fails();
}

/// A PUT of a missing RBAC object creates it (`kubectl replace`), as kube-apiserver's RBAC
/// storage allows — but only for a user who may also `create` it.
#[test]
fn replace_creates_missing_rbac_objects_only_with_create() {
    let s = server();
    let role = |name: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {name}\n  namespace: default\nrules:\n- apiGroups: [\"\"]\n  resources: [secrets]\n  verbs: [get]\n"
        )
    };
    s.kubectl_stdin(&["replace", "-f", "-"], &role("r1")).stdout_is("role.rbac.authorization.k8s.io/r1 replaced\n");
    s.kubectl(&["get", "role", "r1", "-o", "name"]).stdout_is("role.rbac.authorization.k8s.io/r1\n");

    let dave = s.user_kubeconfig("dave", &[]);
    admin(
        &s,
        &[
            &["create", "role", "update-roles", "--verb=update,get", "--resource=roles.rbac.authorization.k8s.io"],
            &["create", "rolebinding", "dave", "--role=update-roles", "--user=dave"],
        ],
    );
    let file = temp_file("r2.yaml", role("r2").as_bytes());
    s.kubectl_as(&dave, &["replace", "-f", file.1.to_str().unwrap()]).stderr_is(&format!(
        "Error from server (Forbidden): error when replacing \"{}\": roles.rbac.authorization.k8s.io \"r2\" is forbidden: User \"dave\" cannot create resource \"roles\" in API group \"rbac.authorization.k8s.io\" in the namespace \"default\"\n",
        file.1.display()
    ));
}

/// Escalation through edits that keep rules and roleRef: adding oneself to a binding's subjects,
/// labelling a powerful ClusterRole into an aggregation, and an apply that creates without
/// `create` are all refused.
#[test]
fn edits_that_keep_rules_and_role_ref_cannot_escalate() {
    let s = server();
    let mallory = s.user_kubeconfig("mallory", &[]);
    admin(
        &s,
        &[
            &["create", "clusterrolebinding", "ops", "--clusterrole=cluster-admin", "--group=ops"],
            &[
                "create",
                "clusterrole",
                "rbac-editor",
                "--verb=get,list,patch,update",
                "--resource=clusterrolebindings,clusterroles",
            ],
            &["create", "role", "patch-secrets", "--verb=get,patch", "--resource=secrets"],
            &["create", "clusterrolebinding", "mallory-rbac", "--clusterrole=rbac-editor", "--user=mallory"],
            &["create", "rolebinding", "mallory-secrets", "--role=patch-secrets", "--user=mallory"],
        ],
    );
    let add_self = r#"[{"op":"add","path":"/subjects/-","value":{"kind":"User","name":"mallory","apiGroup":"rbac.authorization.k8s.io"}}]"#;
    let run = s.kubectl_as(&mallory, &["patch", "clusterrolebinding", "ops", "--type=json", "-p", add_self]);
    assert!(run.fails().contains("is attempting to grant RBAC permissions not currently held"), "{}", run.desc);
    let label = ["label", "clusterrole", "cluster-admin", "rbac.authorization.k8s.io/aggregate-to-view=true"];
    let run = s.kubectl_as(&mallory, &label);
    assert!(run.fails().contains("is attempting to grant RBAC permissions not currently held"), "{}", run.desc);
    let planted = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: planted\n  namespace: default\n";
    let (_d, file) = temp_file("planted.yaml", planted.as_bytes());
    let run = s.kubectl_as(&mallory, &["apply", "--server-side", "-f", file.to_str().unwrap()]);
    assert!(run.fails().contains(r#"User "mallory" cannot create resource "secrets""#), "{}", run.desc);
    s.kubectl(&["get", "secret", "planted"]).fails();
    // Removing an aggregationRule (which freezes a role that should follow its components)
    // takes full authority, like setting one.
    let aggregated = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: follows\naggregationRule:\n  clusterRoleSelectors: [{matchLabels: {team: none}}]\nrules: []\n";
    s.kubectl_stdin(&["create", "-f", "-"], aggregated).ok();
    s.kubectl_as(&mallory, &["patch", "clusterrole", "follows", "--type=merge", "-p", r#"{"aggregationRule":null}"#])
        .stderr_is("Error from server (Forbidden): clusterroles.rbac.authorization.k8s.io \"follows\" is forbidden: must have cluster-admin privileges to use the aggregationRule\n");
}

// ------------------------------------------------------------------------------------------------
// Helpers

/// Runs kubectl commands as the admin, each of which must succeed.
fn admin(s: &Server, commands: &[&[&str]]) {
    for args in commands {
        s.kubectl(args).ok();
    }
}

/// Namespaces `app` (secrets `db` and `other`) and `other` (secret `db`).
fn app_with_secrets(s: &Server) {
    admin(
        s,
        &[
            &["create", "namespace", "app"],
            &["create", "namespace", "other"],
            &["create", "secret", "generic", "db", "-n", "app", "--from-literal=password=db-value"],
            &["create", "secret", "generic", "other", "-n", "app", "--from-literal=password=other-value"],
            &["create", "secret", "generic", "db", "-n", "other", "--from-literal=password=elsewhere"],
        ],
    );
}

/// An audit log in a fresh directory that already holds 1 MiB (mode 0600), so the next record
/// rotates it under `--audit-log-maxsize 1`.
fn full_audit_log() -> (PathBuf, PathBuf) {
    let dir = tempfile::Builder::new().prefix("strongroom-audit-").tempdir().unwrap().keep();
    let log = dir.join("audit.log");
    let mut filler = vec![b'#'; 1024 * 1024 - 1];
    filler.push(b'\n');
    std::fs::write(&log, filler).unwrap();
    std::fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    (dir, log)
}

/// The line kubectl prints for a 403 from the apiserver's authorizer on a core-group resource
/// (`resource` may name a subresource: `serviceaccounts/token`).
fn forbidden(user: &str, verb: &str, resource: &str, name: Option<&str>, namespace: Option<&str>) -> String {
    format!("Error from server (Forbidden): {}\n", forbidden_message(user, verb, "", resource, name, namespace))
}

/// The message of the apiserver's 403 for a resource request.
fn forbidden_message(
    user: &str,
    verb: &str,
    group: &str,
    resource: &str,
    name: Option<&str>,
    namespace: Option<&str>,
) -> String {
    let plural = resource.split('/').next().unwrap_or(resource);
    let qualified = if group.is_empty() { plural.to_string() } else { format!("{plural}.{group}") };
    let subject = match name {
        Some(n) => format!("{qualified} \"{n}\""),
        None => qualified,
    };
    let scope = match namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    format!(
        "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
    )
}

/// The whitespace-separated cells of each line.
fn cells(table: &str) -> Vec<Vec<String>> {
    table.lines().map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
}

/// `kubectl auth whoami` as a map from ATTRIBUTE to VALUE (the columns are at least three
/// spaces apart; an attribute such as `Extra: x` has one inside).
fn whoami(s: &Server, kubeconfig: &Path) -> std::collections::BTreeMap<String, String> {
    whoami_args(s, kubeconfig, &[])
}

fn whoami_args(s: &Server, kubeconfig: &Path, extra: &[&str]) -> std::collections::BTreeMap<String, String> {
    let mut args = extra.to_vec();
    args.extend(["auth", "whoami"]);
    let out = s.kubectl_as(kubeconfig, &args).ok();
    let mut lines = out.lines();
    assert!(lines.next().is_some_and(|h| h.starts_with("ATTRIBUTE ") && h.ends_with("VALUE")), "{out}");
    lines.filter_map(|l| l.split_once("   ")).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect()
}

/// How many requests the server logged from `user` for exactly `method path` with `code`.
fn logged(s: &Server, user: &str, method: &str, path: &str, code: u16) -> usize {
    let needle = format!("user={user} method={method} path={path} code={code} ");
    s.log_text().lines().filter(|l| l.contains(&needle)).count()
}

/// Every event in `DIR/audit.log`.
fn audit_events(s: &Server) -> Vec<Value> {
    let log = std::fs::read_to_string(s.data_dir().join("audit.log")).unwrap_or_default();
    log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON event ({e}): {l}"))).collect()
}

/// A TokenReview manifest for `token` in a file next to the data directory.
fn token_review_file(s: &Server, token: &str, audiences: &[&str]) -> PathBuf {
    let mut review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
    if !audiences.is_empty() {
        review["spec"]["audiences"] = json!(audiences);
    }
    let path = s.data_dir().parent().unwrap().join(format!("review-{}.json", audiences.join("-")));
    std::fs::write(&path, review.to_string()).unwrap();
    path
}

/// `kubectl create -f FILE -o json` of a TokenReview, as whoever `kubeconfig` names.
fn token_review(s: &Server, kubeconfig: &Path, token: &str, audiences: &[&str]) -> Value {
    let file = token_review_file(s, token, audiences);
    let out =
        s.kubectl_as(kubeconfig, &["create", "--validate=false", "-f", file.to_str().unwrap(), "-o", "json"]).ok();
    serde_json::from_str(&out).unwrap()
}

/// A kubectl left running (a watch), killed when dropped.
struct Background(Child);

impl Background {
    fn kubectl(s: &Server, kubeconfig: &Path, args: &[&str]) -> Background {
        let child = s
            .kubectl_cmd()
            .env("KUBECONFIG", kubeconfig)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kubectl");
        Background(child)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn b64url_decode(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap_or_else(|e| panic!("not base64url ({e}): {s}"))
}

/// The claims of a JWT (unverified: the test reads what the server wrote).
fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap_or_else(|| panic!("not a JWT: {} characters", token.len()));
    serde_json::from_slice(&b64url_decode(payload)).unwrap()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The DER prefix of a P-256 SubjectPublicKeyInfo, up to the uncompressed point.
fn p256_spki_prefix() -> Vec<u8> {
    let mut der = vec![0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    der.extend([0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00]);
    der
}

/// A fresh P-256 key: its public JWK, and a function that makes JWS ES256 signatures (r‖s).
fn attacker_key() -> (Value, impl Fn(&[u8]) -> Vec<u8>) {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = key.public_key().as_ref().to_vec();
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64url(&point[1..33]), "y": b64url(&point[33..65])});
    (jwk, move |message: &[u8]| key.sign(&rng, message).unwrap().as_ref().to_vec())
}

#[derive(Clone, Copy)]
enum Validity {
    Current,
    Past,
    Future,
}

/// A client certificate (PEM certificate, PEM key) for `user` in `groups` signed by `issuer`.
fn client_cert(
    issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
    user: &str,
    groups: &[&str],
    validity: Validity,
    client_auth: bool,
) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    for g in groups {
        params.distinguished_name.push(rcgen::DnType::OrganizationName, *g);
    }
    params.distinguished_name.push(rcgen::DnType::CommonName, user);
    params.extended_key_usages = vec![if client_auth {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    }];
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let (from, to) = match validity {
        Validity::Current => (rcgen::date_time_ymd(2020, 1, 1), rcgen::date_time_ymd(2099, 1, 1)),
        Validity::Past => (rcgen::date_time_ymd(2020, 1, 1), rcgen::date_time_ymd(2021, 1, 1)),
        Validity::Future => (rcgen::date_time_ymd(2098, 1, 1), rcgen::date_time_ymd(2099, 1, 1)),
    };
    params.not_before = from;
    params.not_after = to;
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A kubeconfig that trusts this server and presents `cert` (certificate and key PEM).
fn cert_kubeconfig(s: &Server, name: &str, (cert, key): &(String, String)) -> PathBuf {
    let admin = std::fs::read_to_string(s.kubeconfig()).unwrap();
    let ca = admin.lines().find_map(|l| l.trim().strip_prefix("certificate-authority-data: ")).unwrap();
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: s\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: c\n  context:\n    cluster: s\n    user: u\n    namespace: default\ncurrent-context: c\n",
        s.url(),
        STANDARD.encode(cert),
        STANDARD.encode(key),
    );
    let path = s.data_dir().parent().unwrap().join(format!("{name}-cert.kubeconfig"));
    std::fs::write(&path, config).unwrap();
    path
}
