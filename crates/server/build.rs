//! Bundles the page's MLS (`web-mls/`: ts-mls from npm, by its lockfile)
//! into `$OUT_DIR/mls.js`, which the relay serves as `/mls.js`.
//!
//! With node and npm on the machine: `npm ci` (from npm's cache when it
//! has the packages, else from the registry) in a copy of `web-mls/` under
//! `$OUT_DIR`, then esbuild bundles `mls.mjs` into one minified module. No
//! third-party code is ever written into the source tree. Without node or
//! npm, or when either step fails, the build goes on with a warning, and
//! `/mls.js` is a small module that tells the page end-to-end rooms are
//! unavailable: the relay always builds and runs. `EAXCHAT_WEB_MLS=off`
//! chooses that module without trying.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The package's own files, copied to `$OUT_DIR/web-mls`.
const FILES: [&str; 3] = ["package.json", "package-lock.json", "mls.mjs"];

/// What `/mls.js` is when the bundle could not be made.
const WITHOUT_MLS: &str = "// This relay was built without its MLS bundle (node and npm were missing, or the build failed).\n\
export const available = false;\n\
export const reason = \"this relay was built without MLS: end-to-end rooms are unavailable on the page\";\n";

fn main() {
    for file in FILES {
        println!("cargo:rerun-if-changed=web-mls/{file}");
    }
    println!("cargo:rerun-if-env-changed=EAXCHAT_WEB_MLS");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bundle = out.join("mls.js");
    let wanted = env::var("EAXCHAT_WEB_MLS").as_deref() != Ok("off");
    let made = if wanted {
        build(&out, &bundle)
    } else {
        Err("EAXCHAT_WEB_MLS=off".to_string())
    };
    if let Err(why) = made {
        println!(
            "cargo:warning=the page's MLS bundle was not built ({why}): end-to-end rooms will be unavailable on the page; install node and npm for them"
        );
        fs::write(&bundle, WITHOUT_MLS).expect("write $OUT_DIR/mls.js");
    }
}

/// `npm ci` and esbuild in `$OUT_DIR/web-mls`, writing `bundle`.
fn build(out: &Path, bundle: &Path) -> Result<(), String> {
    // Read when the script runs, not baked in when it was compiled: a
    // build script compiled for another checkout sharing the target
    // directory would otherwise copy that checkout's files.
    let manifest =
        env::var_os("CARGO_MANIFEST_DIR").ok_or("cargo did not set CARGO_MANIFEST_DIR")?;
    let source = Path::new(&manifest).join("web-mls");
    let work = out.join("web-mls");
    fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    for file in FILES {
        fs::copy(source.join(file), work.join(file)).map_err(|e| format!("web-mls/{file}: {e}"))?;
    }
    run(
        Command::new("npm")
            .args([
                "ci",
                "--prefer-offline",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
            ])
            .current_dir(&work),
        "npm ci",
    )?;
    let outfile = format!("--outfile={}", bundle.display());
    run(
        Command::new("node")
            .args([
                "node_modules/esbuild/bin/esbuild",
                "mls.mjs",
                "--bundle",
                "--format=esm",
                "--platform=browser",
                "--target=chrome120,firefox120,safari17",
                "--minify",
                "--log-level=warning",
                &outfile,
            ])
            .current_dir(&work),
        "esbuild",
    )
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{what}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(format!("{what} failed: {}", last.trim()))
}
