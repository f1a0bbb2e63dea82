//! The kubeconfig the sandbox writes: one cluster, one token user, context `gwtest-sandbox`.

use base64::Engine as _;

pub const CONTEXT: &str = "gwtest-sandbox";

/// A kubeconfig for `server` with a bearer token; `ca_pem` set for https.
pub fn render(server: &str, token: &str, ca_pem: Option<&str>) -> String {
    // JSON strings are valid YAML scalars: quoting through serde_json keeps any token safe.
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let ca = match ca_pem {
        Some(pem) => format!(
            "    certificate-authority-data: {}\n",
            base64::engine::general_purpose::STANDARD.encode(pem)
        ),
        None => String::new(),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {CONTEXT}\n  cluster:\n    server: {server}\n{ca}users:\n- name: {CONTEXT}\n  user:\n    token: {token}\ncontexts:\n- name: {CONTEXT}\n  context:\n    cluster: {CONTEXT}\n    user: {CONTEXT}\n    namespace: default\ncurrent-context: {CONTEXT}\npreferences: {{}}\n",
        server = q(server),
        token = q(token),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_parseable_yaml() {
        let y = render("https://127.0.0.1:1234", "t\"ok", Some("PEM"));
        let v: serde_json::Value = serde_saphyr::from_str(&y).unwrap();
        assert_eq!(v["current-context"], CONTEXT);
        assert_eq!(v["users"][0]["user"]["token"], "t\"ok");
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"],
            "UEVN"
        );
        let plain: serde_json::Value =
            serde_saphyr::from_str(&render("http://127.0.0.1:1", "x", None)).unwrap();
        assert!(
            plain["clusters"][0]["cluster"]
                .get("certificate-authority-data")
                .is_none()
        );
    }
}
