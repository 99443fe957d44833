//! The agent end to end (issue 4): the real `strongroom agent` and `strongroom run` against a
//! real server, driven with kubectl, observed on tmpfs (reliability.md §1.3 K4–K8, K10; §1.6).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use strongroom_testkit::{Agent, Server, eventually, tmpfs_dir};

const BIN: &str = env!("CARGO_BIN_EXE_strongroom");
/// Generous bounds for propagation on a loaded CI machine: never a speed assertion (the
/// benchmark measures speed), only "it arrives".
const ARRIVES: Duration = Duration::from_secs(30);

fn server() -> Server {
    let s = Server::start(BIN);
    s.kubectl(&["create", "namespace", "app"]).ok();
    s
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Waits until `path` holds `want`.
fn wait_for_content(path: &Path, want: &str) {
    eventually(&format!("{} to hold {want:?}", path.display()), ARRIVES, || {
        (read(path).as_deref() == Some(want)).then_some(())
    });
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

const WEB: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: app
spec:
  containers:
  - name: web
    image: ignored
    volumeMounts:
    - name: creds
      mountPath: /etc/creds
  volumes:
  - name: creds
    secret:
      secretName: db
      defaultMode: 0400
      items:
      - key: password
        path: db/password
      - key: user
        path: user
        mode: 0444
"#;

/// A secret volume appears with Kubernetes' layout and modes, follows every change of the
/// Secret (value changed, key removed), and disappears with its manifest.
#[test]
fn volumes_are_delivered_updated_and_removed() {
    let s = server();
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        "-n",
        "app",
        "--from-literal=password=v1",
        "--from-literal=user=admin",
        "--from-literal=unlisted=x",
    ])
    .ok();
    let agent = Agent::start(BIN, &s.kubeconfig(), &[]);
    agent.write_pod("web.yaml", WEB);
    let vol = agent.volume("app", "web", "creds");
    wait_for_content(&vol.join("db/password"), "v1");

    // The atomic writer's layout: visible names are symlinks through `..data`; unlisted keys
    // are absent (K5); modes as asked (K4).
    let visible: Vec<String> = names(&vol).into_iter().filter(|n| !n.starts_with("..")).collect();
    assert_eq!(visible, ["db", "user"]);
    assert_eq!(std::fs::read_link(vol.join("db")).unwrap(), PathBuf::from("..data/db"));
    assert!(std::fs::symlink_metadata(vol.join("..data")).unwrap().file_type().is_symlink());
    assert_eq!(read(&vol.join("user")).as_deref(), Some("admin"));
    assert_eq!(mode(&vol.join("db/password")), 0o400);
    assert_eq!(mode(&vol.join("user")), 0o444);

    // A change arrives (K8), in place: the version directory is swapped.
    let before = std::fs::read_link(vol.join("..data")).unwrap();
    s.kubectl(&["patch", "secret", "db", "-n", "app", "-p", r#"{"stringData":{"password":"v2"}}"#]).ok();
    wait_for_content(&vol.join("db/password"), "v2");
    assert_ne!(std::fs::read_link(vol.join("..data")).unwrap(), before);
    let versions = names(&vol).into_iter().filter(|n| n.starts_with("..2")).count();
    assert_eq!(versions, 1, "the previous version directory is removed: {:?}", names(&vol));

    // A listed key removed from a non-optional volume fails the mount and keeps the old files.
    s.kubectl(&["patch", "secret", "db", "-n", "app", "--type=json", "-p", r#"[{"op":"remove","path":"/data/user"}]"#])
        .ok();
    eventually("the failure to be logged", ARRIVES, || {
        agent.log_text().contains("references non-existent secret key: user").then_some(())
    });
    assert_eq!(read(&vol.join("user")).as_deref(), Some("admin"));

    // Removing the manifest removes the pod's directory.
    agent.remove_pod("web.yaml");
    let pod_dir = agent.root().join("pods/app/web");
    eventually("the pod directory to be removed", ARRIVES, || (!pod_dir.exists()).then_some(()));
}

/// Without `items`, every key is a file, and a key deleted from the Secret disappears (K8);
/// a Secret of the same name in another namespace is never used (K6); one Secret can back
/// several volumes (K7).
#[test]
fn whole_secret_volumes_follow_keys_and_namespaces() {
    let s = server();
    s.kubectl(&["create", "namespace", "other"]).ok();
    s.kubectl(&["create", "secret", "generic", "db", "-n", "other", "--from-literal=a=wrong"]).ok();
    s.kubectl(&["create", "secret", "generic", "db", "-n", "app", "--from-literal=a=1", "--from-literal=b=2"]).ok();
    let agent = Agent::start(BIN, &s.kubeconfig(), &[]);
    agent.write_pod(
        "two.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: two, namespace: app}\nspec:\n  containers: [{name: c, image: x}]\n  volumes:\n  - {name: one, secret: {secretName: db}}\n  - {name: again, secret: {secretName: db, items: [{key: b, path: b}]}}\n",
    );
    let one = agent.volume("app", "two", "one");
    let again = agent.volume("app", "two", "again");
    wait_for_content(&one.join("a"), "1");
    wait_for_content(&again.join("b"), "2");
    assert_eq!(mode(&one.join("a")), 0o644, "the default mode");
    s.kubectl(&["patch", "secret", "db", "-n", "app", "--type=json", "-p", r#"[{"op":"remove","path":"/data/a"}]"#])
        .ok();
    eventually("the deleted key's file to disappear", ARRIVES, || (!one.join("a").exists()).then_some(()));
    assert_eq!(read(&one.join("b")).as_deref(), Some("2"));
}

/// A missing non-optional Secret keeps the volume from being set up, with a FailedMount line;
/// once created, the volume appears. A missing optional Secret gives an empty volume.
#[test]
fn missing_secrets_fail_closed_unless_optional() {
    let s = server();
    let agent = Agent::start(BIN, &s.kubeconfig(), &[]);
    agent.write_pod(
        "late.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: late, namespace: app}\nspec:\n  containers: [{name: c, image: x}]\n  volumes:\n  - {name: must, secret: {secretName: later}}\n  - {name: maybe, secret: {secretName: never, optional: true}}\n",
    );
    let maybe = agent.volume("app", "late", "maybe");
    eventually("the optional volume", ARRIVES, || maybe.join("..data").exists().then_some(()));
    assert!(names(&maybe).iter().all(|n| n.starts_with("..")), "empty: {:?}", names(&maybe));
    eventually("the FailedMount log line", ARRIVES, || {
        agent
            .log_text()
            .lines()
            .any(|l| l.contains("volume cannot be set up") && l.contains(r#"secret "later" not found"#))
            .then_some(())
    });
    let must = agent.volume("app", "late", "must");
    assert!(!must.join("..data").exists());
    s.kubectl(&["create", "secret", "generic", "later", "-n", "app", "--from-literal=k=here"]).ok();
    wait_for_content(&must.join("k"), "here");
}

/// The agent needs only `get`, `list` and `watch` on the Secrets its pods name (the role
/// documented in docs/agent.md): it never lists every Secret.
#[test]
fn a_role_on_named_secrets_is_enough() {
    let s = server();
    s.kubectl(&["create", "secret", "generic", "db", "-n", "app", "--from-literal=password=p"]).ok();
    s.kubectl(&["create", "secret", "generic", "other", "-n", "app", "--from-literal=x=y"]).ok();
    s.kubectl(&[
        "create",
        "role",
        "agent",
        "-n",
        "app",
        "--verb=get,list,watch",
        "--resource=secrets",
        "--resource-name=db",
    ])
    .ok();
    s.kubectl(&["create", "rolebinding", "agent", "-n", "app", "--role=agent", "--user=node-agent"]).ok();
    let kubeconfig = s.user_kubeconfig("node-agent", &[]);
    let agent = Agent::start(BIN, &kubeconfig, &[]);
    agent.write_pod("web.yaml", &WEB.replace("      - key: user\n        path: user\n        mode: 0444\n", ""));
    let vol = agent.volume("app", "web", "creds");
    wait_for_content(&vol.join("db/password"), "p");
    s.kubectl(&["patch", "secret", "db", "-n", "app", "-p", r#"{"stringData":{"password":"q"}}"#]).ok();
    wait_for_content(&vol.join("db/password"), "q");
    // A pod naming a Secret outside the role gets a clear refusal, not a silent empty volume.
    agent.write_pod(
        "nosy.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: nosy, namespace: app}\nspec:\n  containers: [{name: c, image: x}]\n  volumes:\n  - {name: v, secret: {secretName: other, optional: true}}\n",
    );
    eventually("the refusal to be logged", ARRIVES, || {
        agent.log_text().contains(r#"secrets \"other\" is forbidden"#).then_some(())
    });
    assert!(!agent.volume("app", "nosy", "v").join("..data").exists());
}

/// kill -9 at any moment, then a restart: the volume converges to the current Secret and the
/// visible links are whole again.
#[test]
fn a_killed_agent_converges_after_restart() {
    let s = server();
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        "-n",
        "app",
        "--from-literal=password=v1",
        "--from-literal=user=u",
    ])
    .ok();
    let mut agent = Agent::start(BIN, &s.kubeconfig(), &[]);
    agent.write_pod("web.yaml", WEB);
    let vol = agent.volume("app", "web", "creds");
    wait_for_content(&vol.join("db/password"), "v1");
    agent.kill9();
    s.kubectl(&["patch", "secret", "db", "-n", "app", "-p", r#"{"stringData":{"password":"v2"}}"#]).ok();
    std::fs::remove_file(vol.join("user")).unwrap();
    agent.restart();
    wait_for_content(&vol.join("db/password"), "v2");
    wait_for_content(&vol.join("user"), "u");
}

/// A root that is not on tmpfs is refused: secrets never reach a disk.
#[test]
fn a_root_off_tmpfs_is_refused() {
    let s = server();
    let disk = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let pods = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["agent", "--kubeconfig"])
        .arg(s.kubeconfig())
        .arg("--pods")
        .arg(pods.path())
        .arg("--root")
        .arg(disk.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not on tmpfs"), "{err}");
}

/// Projected volumes: two Secrets and a ServiceAccount token that the server accepts.
#[test]
fn projected_volumes_hold_secrets_and_a_working_token() {
    let s = server();
    s.kubectl(&["create", "secret", "generic", "a", "-n", "app", "--from-literal=x=1"]).ok();
    s.kubectl(&["create", "secret", "generic", "b", "-n", "app", "--from-literal=y=2"]).ok();
    let agent = Agent::start(BIN, &s.kubeconfig(), &[]);
    agent.write_pod(
        "proj.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: proj, namespace: app}\nspec:\n  containers: [{name: c, image: x}]\n  volumes:\n  - name: all\n    projected:\n      sources:\n      - secret: {name: a}\n      - secret: {name: b, items: [{key: y, path: sub/y}]}\n      - serviceAccountToken: {path: token, expirationSeconds: 3600}\n",
    );
    let vol = agent.volume("app", "proj", "all");
    wait_for_content(&vol.join("x"), "1");
    wait_for_content(&vol.join("sub/y"), "2");
    let token = read(&vol.join("token")).unwrap();
    let who = s.kubectl_as(
        &s.token_kubeconfig("sa", &token),
        &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
    );
    assert_eq!(who.ok(), "system:serviceaccount:app:default");
}

/// `strongroom run`: the container's env and files, its exit code passed through, and a
/// restart with the new values when the Secret changes.
#[test]
fn run_delivers_env_and_files_and_restarts_on_change() {
    let s = server();
    s.kubectl(&["create", "secret", "generic", "db", "-n", "app", "--from-literal=password=v1"]).ok();
    let root = tmpfs_dir("strongroom-run-");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: job, namespace: app}}\nspec:\n  containers:\n  - name: main\n    image: x\n    command: [sh, -c, 'echo \"$DB_PASSWORD $(cat {root}/pods/app/job/volumes/creds/password)\" >> {out}; exec sleep 600']\n    env:\n    - name: DB_PASSWORD\n      valueFrom: {{secretKeyRef: {{name: db, key: password}}}}\n    volumeMounts: [{{name: creds, mountPath: /creds}}]\n  volumes:\n  - {{name: creds, secret: {{secretName: db}}}}\n",
        root = root.path().display(),
        out = out.display()
    );
    let pod = work.path().join("job.yaml");
    std::fs::write(&pod, manifest).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--kubeconfig"])
        .arg(s.kubeconfig())
        .arg("--root")
        .arg(root.path())
        .args(["--restart-on-change", "--grace-period", "5s", "-f"])
        .arg(&pod)
        .spawn()
        .unwrap();
    wait_for_content(&out, "v1 v1\n");
    s.kubectl(&["patch", "secret", "db", "-n", "app", "-p", r#"{"stringData":{"password":"v2"}}"#]).ok();
    wait_for_content(&out, "v1 v1\nv2 v2\n");
    // SIGTERM is passed on: sleep dies of it, and `run` reports 128 + 15.
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert!(!root.path().join("pods/app/job").exists(), "the volumes are removed when the process ends");

    // The exit code of a command given after `--`.
    let status = Command::new(BIN)
        .args(["run", "--kubeconfig"])
        .arg(s.kubeconfig())
        .arg("--root")
        .arg(root.path())
        .arg("-f")
        .arg(&pod)
        .args(["--", "sh", "-c", "test \"$DB_PASSWORD\" = v2 && exit 7"])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(7));

    // A missing non-optional Secret: the process is not started.
    let missing = work.path().join("missing.yaml");
    std::fs::write(&missing, std::fs::read_to_string(&pod).unwrap().replace("name: db", "name: nothere")).unwrap();
    let out = Command::new(BIN)
        .args(["run", "--kubeconfig"])
        .arg(s.kubeconfig())
        .arg("--root")
        .arg(root.path())
        .arg("-f")
        .arg(&missing)
        .args(["--", "touch", work.path().join("started").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(r#"secret \"nothere\" not found"#)
            || String::from_utf8_lossy(&out.stderr).contains(r#"secret "nothere" not found"#),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!work.path().join("started").exists());
}

/// 300 rapid updates while a reader keeps reading every file of the volume through one resolved
/// `..data`: every snapshot holds one version, never a mix (reliability.md §3.5 item 51), and
/// the last version arrives.
#[test]
fn rapid_updates_never_show_a_mixed_version() {
    let s = server();
    s.kubectl(&["create", "secret", "generic", "db", "-n", "app", "--from-literal=a=0", "--from-literal=b=0"]).ok();
    let agent = Agent::start(BIN, &s.kubeconfig(), &[]);
    agent.write_pod(
        "mix.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: mix, namespace: app}\nspec:\n  containers: [{name: c, image: x}]\n  volumes:\n  - {name: v, secret: {secretName: db}}\n",
    );
    let vol = agent.volume("app", "mix", "v");
    wait_for_content(&vol.join("a"), "0");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (vol, stop) = (vol.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut snapshots = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // A reader that resolves `..data` once sees one version directory.
                let Ok(target) = std::fs::read_link(vol.join("..data")) else { continue };
                let (Ok(a), Ok(b)) = (
                    std::fs::read_to_string(vol.join(&target).join("a")),
                    std::fs::read_to_string(vol.join(&target).join("b")),
                ) else {
                    continue; // the version was replaced and removed between the two reads
                };
                assert_eq!(a, b, "a mixed version in {}", target.display());
                snapshots += 1;
            }
            snapshots
        })
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use k8s_openapi::api::core::v1::Secret;
        use kube::api::{Api, Patch, PatchParams};
        let api: Api<Secret> = Api::namespaced(s.client().await, "app");
        for i in 1..=300 {
            let patch = serde_json::json!({"stringData": {"a": i.to_string(), "b": i.to_string()}});
            api.patch("db", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        }
    });
    wait_for_content(&vol.join("a"), "300");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let snapshots = reader.join().unwrap();
    assert!(snapshots > 0);
}

/// `--link-mounts`: a mount path becomes a symlink to its volume, and a `subPath` mount a
/// symlink to the file through the volume, so it follows updates (Kubernetes' never do).
#[test]
fn linked_mounts_and_sub_paths_follow_updates() {
    let s = server();
    s.kubectl(&["create", "secret", "generic", "db", "-n", "app", "--from-literal=password=v1"]).ok();
    let mounts = tempfile::tempdir().unwrap();
    let agent = Agent::start(BIN, &s.kubeconfig(), &["--link-mounts"]);
    let whole = mounts.path().join("etc/creds");
    let single = mounts.path().join("app/password.txt");
    agent.write_pod(
        "linked.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: linked, namespace: app}}\nspec:\n  containers:\n  - name: c\n    image: x\n    volumeMounts:\n    - {{name: v, mountPath: {}}}\n    - {{name: v, mountPath: {}, subPath: password}}\n  volumes:\n  - {{name: v, secret: {{secretName: db}}}}\n",
            whole.display(),
            single.display()
        ),
    );
    wait_for_content(&whole.join("password"), "v1");
    wait_for_content(&single, "v1");
    s.kubectl(&["patch", "secret", "db", "-n", "app", "-p", r#"{"stringData":{"password":"v2"}}"#]).ok();
    wait_for_content(&single, "v2");
    assert_eq!(read(&whole.join("password")).as_deref(), Some("v2"));
    // A path that holds something the agent did not make is left alone.
    let taken = mounts.path().join("taken");
    std::fs::write(&taken, "mine").unwrap();
    agent.write_pod(
        "taken.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: taken, namespace: app}}\nspec:\n  containers:\n  - name: c\n    image: x\n    volumeMounts: [{{name: v, mountPath: {}}}]\n  volumes:\n  - {{name: v, secret: {{secretName: db}}}}\n",
            taken.display()
        ),
    );
    eventually("the refusal to be logged", ARRIVES, || {
        agent.log_text().contains("cannot link the mount path").then_some(())
    });
    assert_eq!(read(&taken).as_deref(), Some("mine"));
    // Removing the pod removes its links.
    agent.remove_pod("linked.yaml");
    eventually("the links to be removed", ARRIVES, || (!whole.exists() && !single.exists()).then_some(()));
}

/// `--run-processes`: the agent runs each container as a process with its env, restarts it
/// when its Secret changes and when it exits (restartPolicy Always), and stops it when the
/// manifest is removed.
#[test]
fn the_agent_supervises_processes() {
    let s = server();
    s.kubectl(&["create", "secret", "generic", "db", "-n", "app", "--from-literal=password=v1"]).ok();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let crashes = work.path().join("crashes");
    let pidfile = work.path().join("pid");
    let agent = Agent::start(BIN, &s.kubeconfig(), &["--run-processes", "--restart-on-change", "--grace-period", "5s"]);
    agent.write_pod(
        "svc.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: svc, namespace: app}}\nspec:\n  containers:\n  - name: main\n    command: [sh, -c, 'echo $$ > {pid}; echo \"$DB_PASSWORD\" >> {out}; exec sleep 600']\n    env:\n    - name: DB_PASSWORD\n      valueFrom: {{secretKeyRef: {{name: db, key: password}}}}\n  - name: crasher\n    command: [sh, -c, 'echo x >> {crashes}; exit 3']\n",
            pid = pidfile.display(),
            out = out.display(),
            crashes = crashes.display()
        ),
    );
    wait_for_content(&out, "v1\n");
    s.kubectl(&["patch", "secret", "db", "-n", "app", "-p", r#"{"stringData":{"password":"v2"}}"#]).ok();
    wait_for_content(&out, "v1\nv2\n");
    eventually("the crashing container to be restarted", ARRIVES, || {
        (read(&crashes).unwrap_or_default().lines().count() >= 2).then_some(())
    });
    let pid: i32 = read(&pidfile).unwrap().trim().parse().unwrap();
    agent.remove_pod("svc.yaml");
    eventually("the process to be stopped", ARRIVES, || {
        (!Path::new(&format!("/proc/{pid}")).exists()
            || read(Path::new(&format!("/proc/{pid}/stat"))).is_some_and(|s| s.contains(") Z ")))
        .then_some(())
    });
}

/// `envFrom` with a prefix, `env` overriding it, `$(VAR)` expansion and a key that is not a
/// valid variable name (skipped and reported), as the kubelet builds a container's environment.
#[test]
fn run_builds_the_environment_as_the_kubelet() {
    let s = server();
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "cfg",
        "-n",
        "app",
        "--from-literal=HOST=db.local",
        "--from-literal=PORT=5432",
        "--from-literal=1bad=x",
    ])
    .ok();
    let root = tmpfs_dir("strongroom-run-");
    let work = tempfile::tempdir().unwrap();
    let pod = work.path().join("env.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: env, namespace: app}\nspec:\n  containers:\n  - name: main\n    envFrom:\n    - {secretRef: {name: cfg}}\n    - {prefix: DB_, secretRef: {name: cfg}}\n    env:\n    - {name: DB_PORT, value: '6432'}\n    - {name: URL, value: 'postgres://$(DB_HOST):$(DB_PORT)/$(NOPE)'}\n    - {name: LITERAL, value: '$$(DB_HOST)'}\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["run", "--kubeconfig"])
        .arg(s.kubeconfig())
        .arg("--root")
        .arg(root.path())
        .arg("-f")
        .arg(&pod)
        .args(["--", "sh", "-c", "echo \"$DB_HOST|$DB_PORT|$URL|$LITERAL|$HOST|$(env | grep -c '^1bad=')\""])
        .env("STRONGROOM_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // `1bad` is no variable name: skipped and reported; with the prefix, `DB_1bad` is one.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "db.local|6432|postgres://db.local:6432/$(NOPE)|$(DB_HOST)|db.local|0\n"
    );
    assert!(stderr.contains("invalid environment variable names") && stderr.contains("cfg[1bad]"), "{stderr}");
    // The resolved values never reach the log (reliability.md §3.5 item 54).
    assert!(!stderr.contains("db.local") && !stderr.contains("5432"), "{stderr}");
}

/// `--change-detection Get`: the Secret is read every sync period instead of watched.
#[test]
fn get_change_detection_polls() {
    let s = server();
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        "-n",
        "app",
        "--from-literal=password=v1",
        "--from-literal=user=u",
    ])
    .ok();
    let agent = Agent::start(BIN, &s.kubeconfig(), &["--change-detection", "Get", "--sync-period", "1s"]);
    agent.write_pod("web.yaml", WEB);
    let vol = agent.volume("app", "web", "creds");
    wait_for_content(&vol.join("db/password"), "v1");
    s.kubectl(&["patch", "secret", "db", "-n", "app", "-p", r#"{"stringData":{"password":"v2"}}"#]).ok();
    wait_for_content(&vol.join("db/password"), "v2");
    let audit = std::fs::read_to_string(s.data_dir().join("audit.log")).unwrap();
    assert!(audit.contains(r#""verb":"get""#) && !audit.contains(r#""verb":"watch""#), "reads, and no watch");
}

/// A full tmpfs (ENOSPC) mid-write: the old version stays whole and visible, the error is
/// reported, and the next write that fits succeeds (reliability.md §3.5 item 52). Needs root to
/// mount a small tmpfs.
#[test]
fn a_full_tmpfs_keeps_the_old_version() {
    if !rustix::process::geteuid().is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs this test as root (it mounts a tmpfs)");
        eprintln!("a_full_tmpfs_keeps_the_old_version needs root to mount a tmpfs: not run");
        return;
    }
    struct Mount(tempfile::TempDir);
    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0.path()).status();
        }
    }
    let mount = Mount(tempfile::tempdir().unwrap());
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
        .arg(mount.0.path())
        .status()
        .unwrap();
    assert!(status.success(), "mount a 64 KiB tmpfs");
    let s = server();
    let big = |c: char, n: usize| std::iter::repeat_n(c, n).collect::<String>();
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        "-n",
        "app",
        &format!("--from-literal=blob={}", big('a', 30 * 1024)),
    ])
    .ok();
    let agent = Agent::start_with_root(BIN, &s.kubeconfig(), mount.0.path(), &[]);
    agent.write_pod(
        "full.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: full, namespace: app}\nspec:\n  containers: [{name: c, image: x}]\n  volumes:\n  - {name: v, secret: {secretName: db}}\n",
    );
    let vol = mount.0.path().join("pods/app/full/volumes/v");
    wait_for_content(&vol.join("blob"), &big('a', 30 * 1024));
    // 60 KiB more does not fit next to the 30 KiB in use.
    let patch = format!(r#"{{"stringData":{{"blob":"{}"}}}}"#, big('b', 60 * 1024));
    s.kubectl(&["patch", "secret", "db", "-n", "app", "-p", &patch]).ok();
    eventually("the write failure to be reported", ARRIVES, || {
        agent.log_text().lines().any(|l| l.contains("cannot write the volume")).then_some(())
    });
    assert_eq!(read(&vol.join("blob")).map(|b| b.len()), Some(30 * 1024), "the old version is whole");
    let versions = names(&vol).into_iter().filter(|n| n.starts_with("..2")).count();
    assert_eq!(versions, 1, "the partial version is removed: {:?}", names(&vol));
    s.kubectl(&["patch", "secret", "db", "-n", "app", "-p", r#"{"stringData":{"blob":"small"}}"#]).ok();
    wait_for_content(&vol.join("blob"), "small");
}

/// An immutable Secret is read once and then no longer followed (it cannot change).
#[test]
fn immutable_secrets_are_read_once() {
    let s = server();
    s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Secret\nmetadata: {name: frozen, namespace: app}\nimmutable: true\nstringData: {k: v}\n",
    )
    .ok();
    let agent = Agent::start(BIN, &s.kubeconfig(), &[]);
    agent.write_pod(
        "frozen.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: frozen, namespace: app}\nspec:\n  containers: [{name: c, image: x}]\n  volumes:\n  - {name: v, secret: {secretName: frozen}}\n",
    );
    wait_for_content(&agent.volume("app", "frozen", "v").join("k"), "v");
    eventually("the watch to end", ARRIVES, || {
        agent.log_text().contains("the secret is immutable: no longer watched").then_some(())
    });
}

/// The pod's image pull secrets as a containers-auth.json (for podman, skopeo, buildah), kept
/// current like a volume.
#[test]
fn registry_credentials_are_written_as_auth_json() {
    let s = server();
    s.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "-n",
        "app",
        "--docker-server=registry.example:5000",
        "--docker-username=bob",
        "--docker-password=pw-canary-7f3a9c",
    ])
    .ok();
    let agent = Agent::start(BIN, &s.kubeconfig(), &[]);
    agent.write_pod(
        "pull.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: pull, namespace: app}\nspec:\n  imagePullSecrets: [{name: regcred}]\n  containers: [{name: c, image: registry.example:5000/app:1}]\n",
    );
    let auth = agent.root().join("pods/app/pull/registry/auth.json");
    let expected = |password: &str| {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("bob:{password}"));
        format!(r#"{{"auths":{{"registry.example:5000":{{"auth":"{token}"}}}}}}"#)
    };
    eventually("auth.json", ARRIVES, || {
        read(&auth)
            .and_then(|a| serde_json::from_str::<serde_json::Value>(&a).ok())
            .filter(|v| *v == serde_json::from_str::<serde_json::Value>(&expected("pw-canary-7f3a9c")).unwrap())
    });
    assert_eq!(mode(&auth), 0o600);
    s.kubectl(&["delete", "secret", "regcred", "-n", "app"]).ok();
    s.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "-n",
        "app",
        "--docker-server=registry.example:5000",
        "--docker-username=bob",
        "--docker-password=p2",
    ])
    .ok();
    eventually("the new password in auth.json", ARRIVES, || {
        read(&auth)
            .and_then(|a| serde_json::from_str::<serde_json::Value>(&a).ok())
            .filter(|v| *v == serde_json::from_str::<serde_json::Value>(&expected("p2")).unwrap())
    });
    // Credentials never reach the agent's log, plain or encoded.
    let log = agent.log_text();
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode("bob:pw-canary-7f3a9c");
    assert!(!log.contains("pw-canary-7f3a9c") && !log.contains(&encoded), "{log}");
}
