//! Embeds every file under `templates/` so the binary carries its built-in
//! message templates.

use std::path::Path;

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(rel.join("/"));
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=templates");
    let root = Path::new("templates");
    let mut files = Vec::new();
    walk(root, root, &mut files);
    files.sort();
    let mut code =
        String::from("/// Built-in templates: (relative name, source).\npub const BUILTIN: &[(&str, &str)] = &[\n");
    for rel in files {
        code.push_str(&format!(
            "    ({rel:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/templates/{rel}\"))),\n"
        ));
    }
    code.push_str("];\n");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out).join("builtin_templates.rs"), code).expect("write builtin_templates.rs");
}
