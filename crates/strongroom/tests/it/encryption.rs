//! Encryption at rest: nothing readable on disk, fail closed on a bad key or a corrupt record.

use strongroom_testkit::{contains, read_tree};

use crate::{server, server_with};

#[test]
fn no_value_and_no_key_name_on_disk() {
    let mut s = server();
    s.kubectl(&["create", "secret", "generic", "canary", "--from-literal=canary-key-q7=canary-value-z9"]).ok();
    s.kubectl(&[
        "patch",
        "secret",
        "canary",
        "--type=merge",
        "-p",
        r#"{"stringData":{"second-key-k3":"second-value-v5"}}"#,
    ])
    .ok();
    s.terminate();
    let disk = read_tree(&s.data_dir());
    for needle in ["canary-value-z9", "canary-key-q7", "second-key-k3", "second-value-v5"] {
        assert!(!contains(&disk, needle.as_bytes()), "{needle} found on disk");
    }
    assert!(contains(&disk, b"k8s:enc:aesgcm:v1:"), "values are stored with Kubernetes' aesgcm provider prefix");
}

#[test]
fn identity_first_refuses_to_start_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("enc.yaml");
    std::fs::write(
        &cfg,
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - identity: {}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["server", "--listen", "127.0.0.1:0", "--encryption-provider-config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to start without --allow-plaintext-at-rest"), "{err}");
    // With the flag it starts and serves plaintext at rest, as asked.
    let cfg_arg = cfg.to_str().unwrap().to_string();
    let s = server_with(&["--encryption-provider-config", &cfg_arg, "--allow-plaintext-at-rest"]);
    s.kubectl(&["create", "secret", "generic", "plain", "--from-literal=a=b"]).ok();
}

#[test]
fn rotation_with_reencrypt() {
    use base64::Engine;
    let mut s = server();
    s.kubectl(&["create", "secret", "generic", "rot", "--from-literal=a=before-rotation"]).ok();
    s.terminate();
    // A new key goes first (it writes); the generated key stays second (it still reads).
    let generated = std::fs::read_to_string(s.data_dir().join("encryption-config.yaml")).unwrap();
    let new_key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let rotated = generated.replacen(
        "          keys:\n",
        &format!("          keys:\n            - name: rotated\n              secret: {new_key}\n"),
        1,
    );
    assert_ne!(rotated, generated, "the generated configuration has the expected layout");
    let cfg = s.data_dir().join("rotated.yaml");
    std::fs::write(&cfg, rotated).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["admin", "reencrypt", "--data-dir"])
        .arg(s.data_dir())
        .arg("--encryption-provider-config")
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("after:  ") && stdout.contains("aesgcm:rotated"), "{stdout}");
    assert!(stdout.contains("rewrote "), "{stdout}");
    let disk = read_tree(&s.data_dir());
    assert!(contains(&disk, b"k8s:enc:aesgcm:v1:rotated:"));
    // The server reads everything back with the rotated configuration.
    s.restart_with(&["--encryption-provider-config", cfg.to_str().unwrap()]);
    let a = s.kubectl(&["get", "secret", "rot", "-o", "jsonpath={.data.a}"]).ok();
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(a).unwrap(), b"before-rotation");
}
